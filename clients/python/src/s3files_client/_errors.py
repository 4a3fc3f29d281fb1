"""The exceptions the clients raise, one class per failure a caller handles differently."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

REQUEST_ID_KEY = "x-request-id"


class FilesError(Exception):
    """A call to the Files service failed.

    `code` is the gRPC status, `message` the server's description (it names the problem), and
    `request_id` the id the server logged the call under (quote it when reporting a problem).
    """

    def __init__(self, code: grpc.StatusCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.code.name}: {self.message}{suffix}"


class NotFoundError(FilesError):
    """No such file or upload (or it belongs to another principal)."""


class AuthenticationError(FilesError):
    """The call carried no credential, or one the server does not accept."""


class PermissionDeniedError(FilesError):
    """The credential is valid but not allowed to do this."""


class TooLargeError(FilesError):
    """The file, part or message is larger than a limit of the server's (or this client's)."""


class InvalidArgumentError(FilesError):
    """The server refused an argument: a purpose, an expiry, a range, a declared size or hash."""


class UnavailableError(FilesError):
    """The server, or its storage or database, could not be reached; the call may succeed later."""


class IntegrityError(FilesError):
    """The bytes received or stored do not match the SHA-256 (or size) they should have."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(grpc.StatusCode.DATA_LOSS, message, request_id)


_BY_CODE: dict[grpc.StatusCode, type[FilesError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def is_size_limit(code: grpc.StatusCode, message: str) -> bool:
    """RESOURCE_EXHAUSTED means either a size limit (final) or too many uploads at once (transient);
    the server's and grpcio's size messages all say "larger than"."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than" in message


def error_class(code: grpc.StatusCode, message: str) -> type[FilesError]:
    if is_size_limit(code, message):
        return TooLargeError
    return _BY_CODE.get(code, FilesError)


def request_id_in(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The x-request-id in a call's metadata (key/value pairs; grpc.aio's Metadata is one too)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            return value if isinstance(value, str) else value.decode("ascii", "replace")
    return None


def request_id_of(call: object) -> str | None:
    """The server's request id, from the trailers (or headers) of a finished call or its error."""
    for getter in ("trailing_metadata", "initial_metadata"):
        method = getattr(call, getter, None)
        if not callable(method):
            continue
        try:
            found = request_id_in(method())
        except Exception:  # a call that never started has no metadata to give
            continue
        if found is not None:
            return found
    return None


def status_of(err: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code_method = getattr(err, "code", None)
    details_method = getattr(err, "details", None)
    code = code_method() if callable(code_method) else None
    details = details_method() if callable(details_method) else None
    return (code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN), (details or str(err))


def from_rpc_error(err: grpc.RpcError) -> FilesError:
    """The typed error for a failed call (sync or asyncio); the caller raises it `from err`."""
    code, message = status_of(err)
    return error_class(code, message)(code, message, request_id_of(err))

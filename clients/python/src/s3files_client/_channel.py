"""How a client talks to the server: channel options, TLS credentials and per-call metadata, shared
by the sync and the asyncio client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import grpc

from ._version import __version__

MiB = 1024 * 1024

#: The largest message either side sends: the server's largest configurable message (and a part,
#: which travels in one message) fits.
MAX_MESSAGE_BYTES = 16 * MiB
#: The HTTP/2 flow-control window grpcio grants the server. A fixed 16 MiB keeps a large download
#: from waiting on window updates (grpcio's BDP estimate starts small and moves it around).
WINDOW_BYTES = 16 * MiB

DEFAULT_TIMEOUT_S = 60.0

PathLike = Union[str, "os.PathLike[str]"]
ChannelOptions = Sequence[tuple[str, Any]]
#: What Client(interceptors=...) takes (grpcio's interceptor classes are generic only in its stubs).
SyncInterceptor = Union[
    "grpc.UnaryUnaryClientInterceptor[Any, Any]",
    "grpc.UnaryStreamClientInterceptor[Any, Any]",
    "grpc.StreamUnaryClientInterceptor[Any, Any]",
]


def channel_options(extra: ChannelOptions = ()) -> list[tuple[str, Any]]:
    """The options every channel gets; `extra` (the caller's) override them."""
    options: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.http2.lookahead_bytes": WINDOW_BYTES,
        "grpc.http2.bdp_probe": 0,
        # Larger frames from the server: fewer headers and wake-ups per MiB received.
        "grpc.http2.max_frame_size": MAX_MESSAGE_BYTES - 1,
        # A dead connection fails a long transfer (which has no deadline) within about a minute.
        "grpc.keepalive_time_ms": 30_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.primary_user_agent": f"s3-files-service-client/{__version__}",
    }
    options.update(dict(extra))
    return list(options.items())


@dataclass(frozen=True)
class Tls:
    """PEM files for a TLS channel: the CA to trust (None: the system's roots) and a client
    certificate for mutual TLS."""

    ca_file: PathLike | None = None
    cert_file: PathLike | None = None
    key_file: PathLike | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both for mutual TLS, or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "ca_file"),
            private_key=_read(self.key_file, "key_file"),
            certificate_chain=_read(self.cert_file, "cert_file"),
        )


def tls_settings(
    tls: bool | None, ca_file: PathLike | None, cert_file: PathLike | None, key_file: PathLike | None
) -> Tls | None:
    """TLS when asked for, or when any TLS file is given; plaintext otherwise."""
    wants_files = ca_file is not None or cert_file is not None or key_file is not None
    if tls is False and wants_files:
        raise ValueError("tls=False contradicts ca_file/cert_file/key_file")
    if tls or wants_files:
        return Tls(ca_file, cert_file, key_file)
    return None


def _read(path: PathLike | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise ValueError(f"{what}: cannot read {os.fspath(path)!r}: {err.strerror}") from err


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Sent on every call. The token goes as metadata rather than grpcio call credentials, which
    refuse plaintext channels (a server behind a TLS-terminating proxy, or on loopback)."""
    if token is None:
        return ()
    if not isinstance(token, str) or token.strip() == "" or any(c in token for c in "\r\n"):
        raise ValueError("token must be a non-empty string without line breaks")
    return (("authorization", f"Bearer {token}"),)


def check_target(target: str) -> str:
    if not isinstance(target, str) or target.strip() == "":
        raise ValueError("target must be 'host:port', e.g. '127.0.0.1:8321'")
    if target.startswith(("http://", "https://")):
        raise ValueError(f"target {target!r} is host:port, not a URL: TLS is chosen with tls=/ca_file=, not a scheme")
    return target


def check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    return timeout

"""Client interceptors for the tests: ones that record what the client sends, and one that fails
chosen AddUploadPart attempts before they leave the client, the only way to make the server look
unavailable for one part and not the next."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import grpc
import grpc.aio

# grpcio's interceptor classes are generic only in its type stubs.
if TYPE_CHECKING:
    SyncUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    SyncStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    AioUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    AioStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    SyncUnary = grpc.UnaryUnaryClientInterceptor
    SyncStream = grpc.UnaryStreamClientInterceptor
    AioUnary = grpc.aio.UnaryUnaryClientInterceptor
    AioStream = grpc.aio.UnaryStreamClientInterceptor

ADD_UPLOAD_PART = "/files.v1.FilesService/AddUploadPart"
LIST_FILES = "/files.v1.FilesService/ListFiles"
DOWNLOAD_FILE = "/files.v1.FilesService/DownloadFile"

#: Given (attempt number from 0, part index), the status to fail that attempt with, or None.
FailWhen = Callable[[int, int], "grpc.StatusCode | None"]


def _method(details: Any) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class InjectedError(grpc.RpcError):
    """What grpcio raises for a failed call, as far as the client reads it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return ()


class Recorder:
    """What went through the interceptors: each AddUploadPart attempt (part index, upload id, the
    status injected), each ListFiles request and each DownloadFile request's (offset, length)."""

    def __init__(self, fail: FailWhen | None = None, message: str = "injected by the test") -> None:
        self._fail = fail
        self._message = message
        self._lock = threading.Lock()
        self.part_attempts: list[tuple[int, grpc.StatusCode | None]] = []
        self.upload_ids: set[str] = set()
        self.list_requests = 0
        self.downloads: list[tuple[int, int | None]] = []
        self._in_flight = 0
        #: The most AddUploadPart calls that were under way at once.
        self.max_parts_in_flight = 0

    def on_part(self, request: Any) -> grpc.StatusCode | None:
        with self._lock:
            attempt = len(self.part_attempts)
            code = self._fail(attempt, request.index) if self._fail else None
            self.part_attempts.append((request.index, code))
            self.upload_ids.add(request.upload_id)
        return code

    def part_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_parts_in_flight = max(self.max_parts_in_flight, self._in_flight)

    def part_ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def on_download(self, request: Any) -> None:
        with self._lock:
            self.downloads.append((request.offset, request.length if request.HasField("length") else None))

    def on_list(self) -> None:
        with self._lock:
            self.list_requests += 1

    def attempts_of(self, index: int) -> int:
        return sum(1 for i, _ in self.part_attempts if i == index)

    # -- sync interceptors --------------------------------------------------------------------

    def sync(self) -> list[Any]:
        recorder = self

        class Unary(SyncUnary):
            def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
                method = _method(details)
                if method == ADD_UPLOAD_PART:
                    code = recorder.on_part(request)
                    if code is not None:
                        raise InjectedError(code, recorder._message)
                    recorder.part_started()
                    try:
                        return continuation(details, request)
                    finally:
                        recorder.part_ended()
                if method == LIST_FILES:
                    recorder.on_list()
                return continuation(details, request)

        class Stream(SyncStream):
            def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
                if _method(details) == DOWNLOAD_FILE:
                    recorder.on_download(request)
                return continuation(details, request)

        return [Unary(), Stream()]

    # -- asyncio interceptors -----------------------------------------------------------------

    def aio(self) -> list[Any]:
        recorder = self

        class Unary(AioUnary):
            async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
                method = _method(details)
                if method == ADD_UPLOAD_PART:
                    code = recorder.on_part(request)
                    if code is not None:
                        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), recorder._message, None)
                    recorder.part_started()
                    try:
                        call = await continuation(details, request)
                        await call  # the part's answer, so the count covers the whole call
                        return call
                    finally:
                        recorder.part_ended()
                if method == LIST_FILES:
                    recorder.on_list()
                return await continuation(details, request)

        class Stream(AioStream):
            async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
                if _method(details) == DOWNLOAD_FILE:
                    recorder.on_download(request)
                return await continuation(details, request)

        return [Unary(), Stream()]


def fail_first_attempt(code: grpc.StatusCode) -> FailWhen:
    return lambda attempt, index: code if attempt == 0 else None


def fail_part_always(part: int, code: grpc.StatusCode) -> FailWhen:
    return lambda attempt, index: code if index == part else None

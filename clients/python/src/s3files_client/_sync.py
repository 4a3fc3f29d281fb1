"""The blocking client: grpcio's sync API, parts sent by a pool of threads."""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

import grpc

from . import _channel
from ._channel import ChannelOptions, PathLike, SyncInterceptor
from ._download_state import DownloadDest, DownloadProgress, DownloadState, open_sink
from ._errors import FilesError, UnavailableError, from_rpc_error, request_id_of
from ._gen.files.v1 import files_pb2 as pb
from ._retry import DEFAULT_RETRY, RetryPolicy, download_is_resumable, part_is_retryable
from ._rpc import SyncRpcs
from ._source import BytesSource, FileSource, Source, UploadSource, open_source
from ._types import ExpiresAfter, File, Order, order_value, page_size_value, purpose_value
from ._upload_plan import (
    DEFAULT_PART_CONCURRENCY,
    DEFAULT_PART_SIZE,
    DEFAULT_PART_THRESHOLD,
    Progress,
    ProgressCallback,
    UploadPlan,
    check_stored,
    checked_part,
    part_message,
    plan_upload,
)
from ._wire import PartRequest, UploadItem

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Client:
    """A connection to the Files service. Thread-safe; close it (or use `with`) when done.

    `timeout` is the deadline of each unary call and each part; uploads and downloads streamed in
    one call have `transfer_timeout` (none by default: a large file takes as long as it takes,
    and keepalive pings notice a dead connection).
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        tls: bool | None = None,
        ca_file: PathLike | None = None,
        cert_file: PathLike | None = None,
        key_file: PathLike | None = None,
        timeout: float | None = _channel.DEFAULT_TIMEOUT_S,
        transfer_timeout: float | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        options: ChannelOptions = (),
        interceptors: Sequence[SyncInterceptor] = (),
    ) -> None:
        target = _channel.check_target(target)
        self._timeout = _channel.check_timeout(timeout)
        self._transfer_timeout = _channel.check_timeout(transfer_timeout)
        self._metadata = _channel.call_metadata(token)
        self._retry = retry
        settings = _channel.tls_settings(tls, ca_file, cert_file, key_file)
        all_options = _channel.channel_options(options)
        channel = (
            grpc.secure_channel(target, settings.credentials(), options=all_options)
            if settings is not None
            else grpc.insecure_channel(target, options=all_options)
        )
        self._raw_channel = channel
        #: The grpcio channel (with the interceptors), for calls this client does not wrap.
        self.channel: grpc.Channel = grpc.intercept_channel(channel, *interceptors) if interceptors else channel
        self._rpc = SyncRpcs(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._raw_channel.close()

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    # -- metadata -------------------------------------------------------------------------------

    def get(self, file_id: str) -> File:
        """The metadata of one file; NotFoundError if there is none."""
        return File.from_proto(self._call(self._rpc.get_file, pb.GetFileRequest(file_id=file_id)).file)

    def delete(self, file_id: str) -> None:
        """Deletes a file's bytes and metadata; NotFoundError if there is no such file."""
        self._call(self._rpc.delete_file, pb.DeleteFileRequest(file_id=file_id))

    def list(self, purpose: str | None = None, order: Order | None = None, page_size: int = 100) -> Iterator[File]:
        """Every file (of `purpose`, if given), newest first unless order="asc", fetched
        `page_size` at a time as the iterator is consumed."""
        request = pb.ListFilesRequest(limit=page_size_value(page_size), order=order_value(order))
        if purpose is not None:
            request.purpose = purpose_value(purpose)
        return self._pages(request)

    def _pages(self, request: pb.ListFilesRequest) -> Iterator[File]:
        while True:
            page = self._call(self._rpc.list_files, request)
            for message in page.data:
                yield File.from_proto(message)
            if not page.has_more or len(page.data) == 0:
                return
            request.after = page.last_id

    # -- upload ---------------------------------------------------------------------------------

    def upload(
        self,
        source: UploadSource,
        purpose: str,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        expires_after: ExpiresAfter | None = None,
        progress: ProgressCallback | None = None,
        part_threshold: int = DEFAULT_PART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        part_concurrency: int = DEFAULT_PART_CONCURRENCY,
    ) -> File:
        """Uploads a path, bytes or a binary file object, and returns the stored file.

        Up to `part_threshold` bytes (and any stream of unknown size) go in one call, declaring the
        size and SHA-256 when they are known; larger files go in parts of `part_size`,
        `part_concurrency` at a time, each retried on UNAVAILABLE or RESOURCE_EXHAUSTED, and the
        upload is cancelled if one fails for good. `progress(sent, total)` may be called from
        another thread.
        """
        src = open_source(source)
        try:
            plan = plan_upload(src, purpose, filename, mime_type, expires_after, part_threshold, part_size, part_concurrency)
            tracker = Progress(progress, plan.size)
            tracker.start()
            if plan.in_parts:
                assert isinstance(src, (BytesSource, FileSource))
                return self._upload_parts(src, plan, tracker)
            return self._upload_stream(src, plan, tracker)
        finally:
            src.close()

    def _upload_stream(self, src: Source, plan: UploadPlan, tracker: Progress) -> File:
        sha256 = src.sha256() if isinstance(src, (BytesSource, FileSource)) else None
        read_errors: builtins.list[BaseException] = []

        def requests() -> Iterator[UploadItem]:
            yield plan.metadata(sha256)
            try:
                for chunk in src.chunks():
                    yield chunk
                    tracker.add(len(chunk))
            except BaseException as err:  # grpcio would only log it and cancel the call
                read_errors.append(err)
                raise

        try:
            response, call = self._rpc.upload_file.with_call(requests(), timeout=self._transfer_timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            if read_errors:
                raise read_errors[0] from None
            raise from_rpc_error(err) from err
        return check_stored(File.from_proto(response.file), plan.size, sha256, request_id_of(call))

    def _upload_parts(self, src: BytesSource | FileSource, plan: UploadPlan, tracker: Progress) -> File:
        upload_id = self._call(self._rpc.create_upload, plan.create_upload_request()).upload.id
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=plan.part_concurrency + 1, thread_name_prefix="s3files-part") as pool:
            # The whole file's SHA-256 is worked out beside the parts, to check what the server assembled.
            sha256: Future[str] = pool.submit(src.sha256, stop)
            try:
                part_ids = self._send_parts(pool, upload_id, src, plan, tracker, stop)
                completed = self._call(self._rpc.complete_upload, pb.CompleteUploadRequest(upload_id=upload_id, part_ids=part_ids))
            except BaseException:
                stop.set()
                self._cancel_quietly(upload_id)
                raise
            file = File.from_proto(completed.upload.file)
            try:
                return check_stored(file, plan.size, sha256.result())
            except FilesError:
                self._delete_quietly(file.id)  # a file with the wrong bytes is worse than none
                raise

    def _send_parts(
        self, pool: ThreadPoolExecutor, upload_id: str, src: BytesSource | FileSource, plan: UploadPlan, tracker: Progress, stop: threading.Event
    ) -> builtins.list[str]:
        part_ids: builtins.list[str] = [""] * plan.part_count
        lock = threading.Lock()
        failures: builtins.list[BaseException] = []
        next_index = [0]

        def worker() -> None:
            while not stop.is_set():
                with lock:
                    index = next_index[0]
                    if index >= plan.part_count:
                        return
                    next_index[0] += 1
                try:
                    part_ids[index] = self._send_part(upload_id, src, plan, index, stop)
                except BaseException as err:
                    with lock:
                        failures.append(err)
                    stop.set()
                    return
                tracker.add(plan.part(index)[1])

        workers = [pool.submit(worker) for _ in range(plan.part_concurrency)]
        for w in workers:
            w.result()
        if failures:
            raise failures[0]
        return part_ids

    def _send_part(self, upload_id: str, src: BytesSource | FileSource, plan: UploadPlan, index: int, stop: threading.Event) -> str:
        size = plan.part(index)[1]
        read_errors: builtins.list[BaseException] = []

        def encode() -> bytes:
            try:
                return part_message(src, upload_id, plan, index)
            except BaseException as err:  # grpcio would report only "Exception serializing request!"
                read_errors.append(err)
                raise

        request = PartRequest(upload_id, index, size, encode)
        attempt = 1
        while True:
            try:
                response = self._rpc.add_upload_part(request, timeout=self._timeout, metadata=self._metadata)
                return checked_part(response, index, size)
            except grpc.RpcError as err:
                if read_errors:
                    raise read_errors[0] from None
                error = from_rpc_error(err)
                if attempt >= self._retry.max_attempts or not part_is_retryable(error) or stop.is_set():
                    raise error from err
                if stop.wait(self._retry.delay(attempt)):  # another part failed for good meanwhile
                    raise error from err
                attempt += 1

    def _cancel_quietly(self, upload_id: str) -> None:
        # The error that stopped the upload is the one to report; a failed cancel only means its
        # parts wait for the upload's expiry.
        try:
            self._call(self._rpc.cancel_upload, pb.CancelUploadRequest(upload_id=upload_id))
        except FilesError:
            pass

    def _delete_quietly(self, file_id: str) -> None:
        try:
            self.delete(file_id)
        except FilesError:
            pass

    # -- download -------------------------------------------------------------------------------

    def download(
        self,
        file_id: str,
        dest: DownloadDest,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: DownloadProgress | None = None,
    ) -> File:
        """Downloads a file (or `length` bytes from `offset`) to a path or a binary file object.

        A whole-file download is checked against the SHA-256 the server recorded (IntegrityError
        if it differs). A path is written through a temporary file beside it and renamed on
        success, so a failed download leaves nothing behind. A broken stream resumes from the
        next byte, up to retry.max_attempts times in a row without progress.
        """
        sink = open_sink(dest)
        try:
            state = DownloadState(file_id, offset, length, sink, progress)
            request_id = self._download_into(state)
            file = state.finish(request_id)
            sink.commit()
            return file
        except BaseException:
            sink.abort()
            raise

    def _download_into(self, state: DownloadState) -> str | None:
        failures = 0
        while True:
            call = self._rpc.download_file(state.request(), timeout=self._transfer_timeout, metadata=self._metadata)
            try:
                for item in call:
                    if isinstance(item, memoryview):
                        state.on_chunk(item)
                    else:
                        state.on_file(item)
                if state.done:
                    return request_id_of(call)
                error: FilesError = UnavailableError(
                    grpc.StatusCode.UNAVAILABLE, f"the download stream ended after {state.received} of {state.expected} bytes", request_id_of(call)
                )
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if not download_is_resumable(error):
                    raise error from err
            finally:
                cancel: Callable[[], object] = call.cancel  # (typed here: grpc-stubs leave it untyped)
                cancel()  # no-op once the stream has ended; stops it when a write or check failed
            # Failed attempts in a row that received nothing; one that moved on starts a new count.
            failures = 1 if state.made_progress() else failures + 1
            if failures >= self._retry.max_attempts:
                raise error
            time.sleep(self._retry.delay(failures))


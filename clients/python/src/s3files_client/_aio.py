"""The asyncio client: grpc.aio, parts sent by asyncio tasks, file reads and writes in worker
threads so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import TypeVar

import grpc
import grpc.aio

from . import _channel
from ._channel import ChannelOptions, PathLike
from ._download_state import DownloadDest, DownloadProgress, DownloadState, open_sink
from ._errors import FilesError, UnavailableError, from_rpc_error, request_id_in
from ._gen.files.v1 import files_pb2 as pb
from ._retry import DEFAULT_RETRY, RetryPolicy, download_is_resumable, part_is_retryable
from ._rpc import AsyncRpcs
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


class AsyncClient:
    """The asyncio twin of Client: the same arguments and methods, awaited (`list` is an async
    iterator). Use it from one event loop; close it (or use `async with`) when done."""

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
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        target = _channel.check_target(target)
        self._timeout = _channel.check_timeout(timeout)
        self._transfer_timeout = _channel.check_timeout(transfer_timeout)
        self._metadata = _channel.call_metadata(token)
        self._retry = retry
        settings = _channel.tls_settings(tls, ca_file, cert_file, key_file)
        all_options = _channel.channel_options(options)
        #: The grpc.aio channel, for calls this client does not wrap.
        self.channel: grpc.aio.Channel = (
            grpc.aio.secure_channel(target, settings.credentials(), options=all_options, interceptors=list(interceptors))
            if settings is not None
            else grpc.aio.insecure_channel(target, options=all_options, interceptors=list(interceptors))
        )
        self._rpc = AsyncRpcs(self.channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close(None)

    async def _call(self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        try:
            response: Resp = await method(request, timeout=self._timeout, metadata=self._metadata)
            return response
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    # -- metadata -------------------------------------------------------------------------------

    async def get(self, file_id: str) -> File:
        """The metadata of one file; NotFoundError if there is none."""
        return File.from_proto((await self._call(self._rpc.get_file, pb.GetFileRequest(file_id=file_id))).file)

    async def delete(self, file_id: str) -> None:
        """Deletes a file's bytes and metadata; NotFoundError if there is no such file."""
        await self._call(self._rpc.delete_file, pb.DeleteFileRequest(file_id=file_id))

    def list(self, purpose: str | None = None, order: Order | None = None, page_size: int = 100) -> AsyncIterator[File]:
        """Every file (of `purpose`, if given), newest first unless order="asc", fetched
        `page_size` at a time as the iterator is consumed."""
        request = pb.ListFilesRequest(limit=page_size_value(page_size), order=order_value(order))
        if purpose is not None:
            request.purpose = purpose_value(purpose)
        return self._pages(request)

    async def _pages(self, request: pb.ListFilesRequest) -> AsyncIterator[File]:
        while True:
            page = await self._call(self._rpc.list_files, request)
            for message in page.data:
                yield File.from_proto(message)
            if not page.has_more or len(page.data) == 0:
                return
            request.after = page.last_id

    # -- upload ---------------------------------------------------------------------------------

    async def upload(
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
        """Client.upload, awaited; parts go as `part_concurrency` tasks, and `progress` is called
        on the event loop."""
        src = await asyncio.to_thread(open_source, source)
        try:
            plan = plan_upload(src, purpose, filename, mime_type, expires_after, part_threshold, part_size, part_concurrency)
            tracker = Progress(progress, plan.size)
            tracker.start()
            if plan.in_parts:
                assert isinstance(src, (BytesSource, FileSource))
                return await self._upload_parts(src, plan, tracker)
            return await self._upload_stream(src, plan, tracker)
        finally:
            src.close()

    async def _upload_stream(self, src: Source, plan: UploadPlan, tracker: Progress) -> File:
        sha256 = await asyncio.to_thread(src.sha256) if isinstance(src, (BytesSource, FileSource)) else None
        read_errors: builtins.list[BaseException] = []
        sent = 0

        async def requests() -> AsyncIterator[UploadItem]:
            nonlocal sent
            yield plan.metadata(sha256)
            chunks = src.chunks()
            try:
                while True:
                    # Slices of bytes cost nothing; a file or stream is read off the loop.
                    chunk = next(chunks, None) if isinstance(src, BytesSource) else await asyncio.to_thread(next, chunks, None)
                    if chunk is None:
                        return
                    yield chunk
                    sent += len(chunk)
                    tracker.add(len(chunk))
            except Exception as err:  # grpc.aio would only log it and cancel the call
                read_errors.append(err)
                raise

        call = self._rpc.upload_file(requests(), timeout=self._transfer_timeout, metadata=self._metadata)
        try:
            response = await call
        except (grpc.RpcError, asyncio.CancelledError) as err:
            if read_errors:
                raise read_errors[0] from None
            if not isinstance(err, grpc.RpcError):
                raise
            error = from_rpc_error(err)
            if _lost_status(error):
                # Declaring the size (or, for a stream, what was sent before the refusal) meets a
                # size limit up front; a declared size with no bytes after it can never be stored.
                probe = plan.metadata(sha256)
                probe.size_bytes = plan.size or max(sent, 1)
                error = await self._refusal_of(probe, error)
            raise error from err
        request_id = request_id_in(await call.trailing_metadata())
        return check_stored(File.from_proto(response.file), plan.size, sha256, request_id)

    async def _refusal_of(self, metadata: pb.UploadFileMetadata, lost: FilesError) -> FilesError:
        """The server's reason for refusing an upload whose status grpc.aio lost (see _lost_status):
        the metadata alone, sent again, meets the same refusal when the metadata or the size was
        the problem (a size limit, purpose, expiry, credentials). It declares a size and sends no
        bytes, so nothing can be stored; if it passes, the reason stays unknown and `lost` is what
        is reported."""

        async def metadata_only() -> AsyncIterator[UploadItem]:
            yield metadata

        try:
            await self._rpc.upload_file(metadata_only(), timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            refusal = from_rpc_error(err)
            if not (refusal.code == grpc.StatusCode.INVALID_ARGUMENT and "size" in refusal.message):
                return refusal
        return lost

    async def _upload_parts(self, src: BytesSource | FileSource, plan: UploadPlan, tracker: Progress) -> File:
        upload_id = (await self._call(self._rpc.create_upload, plan.create_upload_request())).upload.id
        stop = threading.Event()
        # The whole file's SHA-256 is worked out beside the parts, to check what the server assembled.
        sha256 = asyncio.ensure_future(asyncio.to_thread(src.sha256, stop))
        try:
            part_ids = await self._send_parts(upload_id, src, plan, tracker)
            completed = await self._call(self._rpc.complete_upload, pb.CompleteUploadRequest(upload_id=upload_id, part_ids=part_ids))
        except BaseException:
            stop.set()
            await asyncio.gather(sha256, return_exceptions=True)  # before the source closes under it
            await asyncio.shield(self._cancel_quietly(upload_id))
            raise
        file = File.from_proto(completed.upload.file)
        try:
            return check_stored(file, plan.size, await sha256)
        except FilesError:
            await self._delete_quietly(file.id)  # a file with the wrong bytes is worse than none
            raise

    async def _send_parts(self, upload_id: str, src: BytesSource | FileSource, plan: UploadPlan, tracker: Progress) -> builtins.list[str]:
        part_ids: builtins.list[str] = [""] * plan.part_count
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < plan.part_count:
                index = next_index
                next_index += 1
                part_ids[index] = await self._send_part(upload_id, src, plan, index)
                tracker.add(plan.part(index)[1])

        tasks = [asyncio.ensure_future(worker()) for _ in range(plan.part_concurrency)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # The first failure is the one raised; the parts still in flight are stopped.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return part_ids

    async def _send_part(self, upload_id: str, src: BytesSource | FileSource, plan: UploadPlan, index: int) -> str:
        size = plan.part(index)[1]
        attempt = 1
        while True:
            # Built off the event loop (a copy of the part, and perhaps a disk read); a retry builds it again.
            message = await asyncio.to_thread(part_message, src, upload_id, plan, index)
            request = PartRequest(upload_id, index, size, _once(message))
            del message  # held by the request alone, which the call drops once it has sent it
            try:
                response = await self._rpc.add_upload_part(request, timeout=self._timeout, metadata=self._metadata)
                return checked_part(response, index, size)
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if attempt >= self._retry.max_attempts or not part_is_retryable(error):
                    raise error from err
                await asyncio.sleep(self._retry.delay(attempt))
                attempt += 1

    async def _cancel_quietly(self, upload_id: str) -> None:
        # The error that stopped the upload is the one to report; a failed cancel only means its
        # parts wait for the upload's expiry.
        try:
            await self._call(self._rpc.cancel_upload, pb.CancelUploadRequest(upload_id=upload_id))
        except FilesError:
            pass

    async def _delete_quietly(self, file_id: str) -> None:
        try:
            await self.delete(file_id)
        except FilesError:
            pass

    # -- download -------------------------------------------------------------------------------

    async def download(
        self,
        file_id: str,
        dest: DownloadDest,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: DownloadProgress | None = None,
    ) -> File:
        """Client.download, awaited; chunks are written in a worker thread and `progress` is
        called on the event loop."""
        sink = await asyncio.to_thread(open_sink, dest)
        try:
            state = DownloadState(file_id, offset, length, sink, progress)
            request_id = await self._download_into(state)
            file = state.finish(request_id)
            await asyncio.to_thread(sink.commit)
            return file
        except BaseException:
            sink.abort()
            raise

    async def _download_into(self, state: DownloadState) -> str | None:
        failures = 0
        while True:
            call = self._rpc.download_file(state.request(), timeout=self._transfer_timeout, metadata=self._metadata)
            try:
                async for item in call:
                    if isinstance(item, memoryview):
                        await asyncio.to_thread(state.on_chunk, item, False)
                        state.report()
                    else:
                        state.on_file(item)
                if state.done:
                    return request_id_in(await call.trailing_metadata())
                error: FilesError = UnavailableError(
                    grpc.StatusCode.UNAVAILABLE, f"the download stream ended after {state.received} of {state.expected} bytes"
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
            await asyncio.sleep(self._retry.delay(failures))


def _lost_status(error: FilesError) -> bool:
    """grpc.aio reports a message it could not send, because the server had already answered, as
    this local INTERNAL error in place of the server's status (the sync API reports the server's)."""
    return error.code == grpc.StatusCode.INTERNAL and error.message == "Internal error from Core"


def _once(message: bytes) -> Callable[[], bytes]:
    """The message for its one serialization; the reference is dropped then, so the bytes live only
    as long as grpcio needs them."""
    held = [message]

    def encode() -> bytes:
        return held.pop()

    return encode

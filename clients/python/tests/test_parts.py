"""The parallel-parts path under failure: a part that fails with UNAVAILABLE (or a transient
RESOURCE_EXHAUSTED) is sent again, and an upload whose part fails for good is cancelled on the
server, leaving no file, and raises the part's error."""

from __future__ import annotations

import io
import os
import pathlib

import grpc
import pytest

import s3files_client
from faults import Recorder, fail_first_attempt, fail_part_always
from s3files_client.pb import files_pb2, files_pb2_grpc
from support import Servers, aclient, payload, run, sha256, unique_name

MiB = 1024 * 1024
THRESHOLD = 6 * MiB
PART = 5 * MiB
SIZE = 16 * MiB + 5  # four parts
FAST_RETRY = s3files_client.RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


def upload_status(servers: Servers, upload_id: str) -> int:
    """GetUpload through the generated stub the wheel ships (untyped code, as protoc writes it)."""
    with grpc.insecure_channel(servers.target) as channel:
        stub = files_pb2_grpc.FilesServiceStub(channel)
        status: int = stub.GetUpload(files_pb2.GetUploadRequest(upload_id=upload_id), timeout=30).upload.status
        return status


def files_named(client: s3files_client.Client, name: str) -> list[str]:
    return [f.id for f in client.list(purpose="assistants") if f.filename == name]


@pytest.mark.parametrize(
    "code,message",
    [
        (grpc.StatusCode.UNAVAILABLE, "injected by the test"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "The server is handling its maximum of 512 uploads; try again shortly"),
    ],
)
def test_sync_part_retried_after_a_transient_failure(servers: Servers, code: grpc.StatusCode, message: str) -> None:
    data = payload(SIZE)
    recorder = Recorder(fail_first_attempt(code), message)
    with s3files_client.connect(servers.target, interceptors=recorder.sync(), retry=FAST_RETRY) as client:
        file = client.upload(data, "assistants", filename=unique_name("retry"), part_threshold=THRESHOLD, part_size=PART)
        try:
            assert (file.bytes, file.sha256) == (SIZE, sha256(data))
            failed_index = recorder.part_attempts[0][0]
            assert recorder.part_attempts[0][1] == code
            assert recorder.attempts_of(failed_index) == 2
            assert len(recorder.part_attempts) == 4 + 1
        finally:
            client.delete(file.id)


def test_aio_part_retried_after_unavailable(servers: Servers) -> None:
    data = payload(SIZE)
    recorder = Recorder(fail_first_attempt(grpc.StatusCode.UNAVAILABLE))

    async def scenario() -> None:
        async with aclient(servers.target, interceptors=recorder.aio(), retry=FAST_RETRY) as client:
            file = await client.upload(data, "assistants", filename=unique_name("aio-retry"), part_threshold=THRESHOLD, part_size=PART)
            try:
                assert (file.bytes, file.sha256) == (SIZE, sha256(data))
                assert recorder.attempts_of(recorder.part_attempts[0][0]) == 2
                assert len(recorder.part_attempts) == 5
            finally:
                await client.delete(file.id)

    run(scenario())


@pytest.mark.parametrize(
    "code,error,attempts",
    [
        # Retried until the attempts run out, then the upload is given up.
        (grpc.StatusCode.UNAVAILABLE, s3files_client.UnavailableError, FAST_RETRY.max_attempts),
        # Not worth a retry: given up at once.
        (grpc.StatusCode.PERMISSION_DENIED, s3files_client.PermissionDeniedError, 1),
    ],
)
def test_sync_permanent_part_failure_cancels_the_upload(servers: Servers, code: grpc.StatusCode, error: type[Exception], attempts: int) -> None:
    recorder = Recorder(fail_part_always(2, code))
    name = unique_name("cancelled")
    with s3files_client.connect(servers.target, interceptors=recorder.sync(), retry=FAST_RETRY) as client:
        with pytest.raises(error) as raised:
            client.upload(payload(SIZE), "assistants", filename=name, part_threshold=THRESHOLD, part_size=PART)
        assert raised.value.code == code  # type: ignore[attr-defined]
        assert recorder.attempts_of(2) == attempts
        (upload_id,) = recorder.upload_ids
        assert upload_status(servers, upload_id) == files_pb2.UPLOAD_STATUS_CANCELLED
        assert files_named(client, name) == []


def test_aio_permanent_part_failure_cancels_the_upload(servers: Servers) -> None:
    recorder = Recorder(fail_part_always(1, grpc.StatusCode.UNAVAILABLE))
    name = unique_name("aio-cancelled")

    async def scenario() -> None:
        async with aclient(servers.target, interceptors=recorder.aio(), retry=FAST_RETRY) as client:
            with pytest.raises(s3files_client.UnavailableError):
                await client.upload(payload(SIZE), "assistants", filename=name, part_threshold=THRESHOLD, part_size=PART)

    run(scenario())
    assert recorder.attempts_of(1) == FAST_RETRY.max_attempts
    (upload_id,) = recorder.upload_ids
    assert upload_status(servers, upload_id) == files_pb2.UPLOAD_STATUS_CANCELLED
    with s3files_client.connect(servers.target) as client:
        assert files_named(client, name) == []


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_parts_go_in_parallel_and_the_file_in_order(servers: Servers, flavour: str) -> None:
    """Eight parts, four at a time: four are under way at once, and the file comes out byte for byte."""
    data = payload(8 * PART - 11)
    recorder = Recorder()
    name = unique_name("order")
    if flavour == "sync":
        with s3files_client.connect(servers.target, interceptors=recorder.sync()) as client:
            file = client.upload(data, "assistants", filename=name, part_threshold=THRESHOLD, part_size=PART, part_concurrency=4)
    else:

        async def scenario() -> s3files_client.File:
            async with aclient(servers.target, interceptors=recorder.aio()) as client:
                return await client.upload(data, "assistants", filename=name, part_threshold=THRESHOLD, part_size=PART, part_concurrency=4)

        file = run(scenario())
    with s3files_client.connect(servers.target) as client:
        try:
            assert sorted(i for i, _ in recorder.part_attempts) == list(range(8))
            assert recorder.max_parts_in_flight == 4
            assert file.sha256 == sha256(data)
            assert sha256(download_bytes(client, file.id)) == sha256(data)
        finally:
            client.delete(file.id)


def download_bytes(client: s3files_client.Client, file_id: str) -> bytes:
    buffer = io.BytesIO()
    client.download(file_id, buffer)
    return buffer.getvalue()


def test_a_file_that_shrinks_during_the_upload_fails_it_and_cancels(servers: Servers, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(payload(SIZE))
    recorder = Recorder()

    def truncate_after_the_first_part(sent: int, total: int | None) -> None:
        if sent > 0:
            os.truncate(path, PART + 10)

    with s3files_client.connect(servers.target, interceptors=recorder.sync()) as client:
        with pytest.raises(ValueError, match="changed during the upload"):
            client.upload(
                str(path), "assistants", progress=truncate_after_the_first_part, part_threshold=THRESHOLD, part_size=PART, part_concurrency=1
            )
    (upload_id,) = recorder.upload_ids
    assert upload_status(servers, upload_id) == files_pb2.UPLOAD_STATUS_CANCELLED

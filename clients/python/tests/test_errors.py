"""Typed errors: each carries the gRPC status, the server's message and its request id."""

from __future__ import annotations

import io

import grpc
import pytest

import s3files_client
from faults import Recorder
from s3files_client.pb import files_pb2, files_pb2_grpc
from support import Servers, aclient, payload, run, unique_name

UNKNOWN_ID = "file-0123456789abcdef0123456789abcdef"


def test_not_found(client: s3files_client.Client) -> None:
    for call in (lambda: client.get(UNKNOWN_ID), lambda: client.delete(UNKNOWN_ID), lambda: client.download(UNKNOWN_ID, io.BytesIO())):
        with pytest.raises(s3files_client.NotFoundError) as raised:
            call()
        err = raised.value
        assert isinstance(err, s3files_client.FilesError)
        assert err.code == grpc.StatusCode.NOT_FOUND
        assert UNKNOWN_ID in err.message
        assert err.request_id and len(err.request_id) >= 16
        assert str(err) == f"NOT_FOUND: {err.message} (request id {err.request_id})"


def test_aio_not_found(servers: Servers) -> None:
    async def scenario() -> None:
        async with aclient(servers.target) as client:
            with pytest.raises(s3files_client.NotFoundError) as raised:
                await client.get(UNKNOWN_ID)
            assert raised.value.request_id
            with pytest.raises(s3files_client.NotFoundError):
                await client.download(UNKNOWN_ID, io.BytesIO())

    run(scenario())


def test_unauthenticated_without_or_with_a_wrong_token(servers: Servers) -> None:
    for token in (None, "sk-fake-not-a-key-of-this-server-000"):
        with s3files_client.connect(servers.auth_target, token) as client:
            with pytest.raises(s3files_client.AuthenticationError) as raised:
                client.get(UNKNOWN_ID)
            assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert raised.value.request_id
            with pytest.raises(s3files_client.AuthenticationError):
                client.upload(b"x", "assistants", filename="x.txt")
            with pytest.raises(s3files_client.AuthenticationError):
                list(client.list())


def test_aio_unauthenticated(servers: Servers) -> None:
    async def scenario() -> None:
        async with aclient(servers.auth_target) as client:
            with pytest.raises(s3files_client.AuthenticationError):
                await client.upload(b"x", "assistants", filename="x.txt")
            with pytest.raises(s3files_client.AuthenticationError):
                [f async for f in client.list()]

    run(scenario())


def test_the_token_is_sent_on_every_call(servers: Servers) -> None:
    with s3files_client.connect(servers.auth_target, servers.token) as client:
        file = client.upload(payload(1000), "assistants", filename=unique_name("auth"))
        assert client.get(file.id) == file
        assert client.download(file.id, io.BytesIO()) == file
        assert file.id in [f.id for f in client.list()]
        client.delete(file.id)


def test_too_large(servers: Servers) -> None:
    limit = servers.small_max_bytes
    with s3files_client.connect(servers.small_target) as client:
        # Declared size over max_file_bytes: refused before the bytes are sent.
        with pytest.raises(s3files_client.TooLargeError) as raised:
            client.upload(payload(limit + 1), "assistants", filename="big.bin")
        assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(limit) in raised.value.message and raised.value.request_id
        # A stream of unknown size: refused when it passes the limit.
        with pytest.raises(s3files_client.TooLargeError):
            client.upload(io.BytesIO(payload(limit + 1)), "assistants", filename="big.bin")
        # Exactly the limit is fine.
        file = client.upload(payload(limit), "assistants", filename=unique_name("limit"))
        client.delete(file.id)


def test_too_large_in_parts_is_not_retried_and_cancels_the_upload(servers: Servers) -> None:
    """Parts larger than the server's max_part_bytes: refused once (a size limit is not worth a
    retry), and the upload is cancelled."""
    limit = servers.small_max_bytes
    recorder = Recorder()
    size = 2 * limit + 10
    with s3files_client.connect(servers.small_target, interceptors=recorder.sync()) as client:
        with pytest.raises(s3files_client.TooLargeError):
            client.upload(payload(size), "assistants", filename="parts.bin", part_threshold=limit, part_size=limit + 5, part_concurrency=1)
        assert len(recorder.part_attempts) == 1
        (upload_id,) = recorder.upload_ids
        stub = files_pb2_grpc.FilesServiceStub(client.channel)
        assert stub.GetUpload(files_pb2.GetUploadRequest(upload_id=upload_id)).upload.status == files_pb2.UPLOAD_STATUS_CANCELLED
        # Over the upload limit: CreateUpload itself refuses.
        with pytest.raises(s3files_client.TooLargeError, match="upload limit"):
            client.upload(payload(servers.small_max_upload_bytes + 1), "assistants", filename="huge.bin", part_threshold=limit)


def test_aio_too_large(servers: Servers) -> None:
    """Many times over: in a few percent of tries the server's refusal arrives while grpc.aio is
    still sending, which grpc.aio reports as a bare INTERNAL; the client must still say TooLarge."""
    data = payload(servers.small_max_bytes + 1)

    async def scenario() -> None:
        async with aclient(servers.small_target) as client:
            for _ in range(60):
                with pytest.raises(s3files_client.TooLargeError) as raised:
                    await client.upload(data, "assistants", filename="big.bin")
                assert raised.value.request_id

    run(scenario())


def test_invalid_arguments_from_the_server(client: s3files_client.Client) -> None:
    with pytest.raises(s3files_client.InvalidArgumentError) as raised:
        client.upload(b"x", "assistants", filename="x.txt", expires_after=10)
    assert "expires_after" in raised.value.message
    with pytest.raises(s3files_client.InvalidArgumentError):
        client.upload(b"x", "assistants_output", filename="x.txt")  # output-only purpose


def test_bad_arguments_are_refused_before_any_call(client: s3files_client.Client, tmp_path: object) -> None:
    with pytest.raises(ValueError, match="unknown purpose 'training'"):
        client.upload(b"x", "training", filename="x.txt")
    with pytest.raises(ValueError, match="filename is required"):
        client.upload(b"x", "assistants")
    with pytest.raises(TypeError, match="source must be a path, bytes or a binary file object"):
        client.upload(42, "assistants", filename="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="part_size"):
        client.upload(b"x", "assistants", filename="x", part_size=64 * 1024 * 1024)
    with pytest.raises(ValueError, match="expires_after"):
        client.upload(b"x", "assistants", filename="x", expires_after=-1)
    with pytest.raises(FileNotFoundError):
        client.upload("/nonexistent/file.jsonl", "batch")
    with pytest.raises(ValueError, match="not a URL"):
        s3files_client.connect("http://127.0.0.1:8321")
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        s3files_client.connect("127.0.0.1:8321", cert_file="client.crt")
    with pytest.raises(ValueError, match="ca_file: cannot read"):
        s3files_client.connect("127.0.0.1:8321", ca_file="/nonexistent/ca.crt")

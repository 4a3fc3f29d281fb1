"""Downloads that go wrong: a connection cut mid-stream (by a proxy the test controls) resumes from
the bytes already written; bytes that do not match the recorded SHA-256 raise IntegrityError; and
a failed download to a path leaves no file behind."""

from __future__ import annotations

import io
import os
import pathlib

import pytest

import s3files_client
from cutting_proxy import CuttingProxy
from faults import Recorder
from support import ProgressLog, Servers, aclient, payload, run, sha256, unique_name

MiB = 1024 * 1024
SIZE = 12 * MiB + 7
CUT_AFTER = 3 * MiB


@pytest.fixture(scope="module")
def stored(servers: Servers) -> tuple[str, bytes]:
    data = payload(SIZE)
    with s3files_client.connect(servers.target) as client:
        return client.upload(data, "assistants", filename=unique_name("resume")).id, data


def test_sync_download_resumes_after_the_connection_is_cut(servers: Servers, stored: tuple[str, bytes], tmp_path: pathlib.Path) -> None:
    file_id, data = stored
    recorder = Recorder()
    progress = ProgressLog()
    dest = tmp_path / "resumed.bin"
    with CuttingProxy(servers.target, cut_after=CUT_AFTER) as proxy:
        with s3files_client.connect(proxy.target, interceptors=recorder.sync()) as client:
            file = client.download(file_id, str(dest), progress=progress)
        assert (proxy.cut, proxy.connections) == (1, 2)
    assert file.sha256 == sha256(data)
    assert sha256(dest.read_bytes()) == sha256(data)
    assert os.listdir(tmp_path) == ["resumed.bin"]
    # The second request asked only for what had not arrived.
    (first, second) = recorder.downloads
    assert first == (0, None)
    assert 0 < second[0] <= CUT_AFTER and second[1] is None
    assert progress.last == (SIZE, SIZE)


def test_aio_download_resumes_after_the_connection_is_cut(servers: Servers, stored: tuple[str, bytes]) -> None:
    file_id, data = stored
    recorder = Recorder()
    buffer = io.BytesIO()
    with CuttingProxy(servers.target, cut_after=CUT_AFTER) as proxy:

        async def scenario() -> s3files_client.File:
            async with aclient(proxy.target, interceptors=recorder.aio()) as client:
                return await client.download(file_id, buffer)

        file = run(scenario())
        assert (proxy.cut, proxy.connections) == (1, 2)
    assert sha256(buffer.getvalue()) == sha256(data) == file.sha256
    assert recorder.downloads[0] == (0, None) and 0 < recorder.downloads[1][0] <= CUT_AFTER


def test_a_resumed_range_keeps_its_end(servers: Servers, stored: tuple[str, bytes]) -> None:
    file_id, data = stored
    recorder = Recorder()
    buffer = io.BytesIO()
    offset, length = MiB + 1, 8 * MiB
    with CuttingProxy(servers.target, cut_after=CUT_AFTER) as proxy:
        with s3files_client.connect(proxy.target, interceptors=recorder.sync()) as client:
            client.download(file_id, buffer, offset=offset, length=length)
    assert buffer.getvalue() == data[offset : offset + length]
    (first, second) = recorder.downloads
    assert first == (offset, length)
    assert second[0] > offset and second[0] + (second[1] or 0) == offset + length


def test_every_connection_cut_gives_up_after_the_retries(servers: Servers, stored: tuple[str, bytes], tmp_path: pathlib.Path) -> None:
    file_id, _ = stored
    dest = tmp_path / "never.bin"
    retry = s3files_client.RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    recorder = Recorder()
    # Every connection is cut before a single chunk can arrive: no progress, so the attempts run out.
    with CuttingProxy(servers.target, cut_after=1, cuts=1000) as proxy:
        with s3files_client.connect(proxy.target, retry=retry, interceptors=recorder.sync()) as client:
            with pytest.raises(s3files_client.UnavailableError):
                client.download(file_id, str(dest))
        assert proxy.cut >= 1
    assert recorder.downloads == [(0, None)] * 3
    assert os.listdir(tmp_path) == []


def test_bytes_that_do_not_match_the_recorded_sha256_raise(servers: Servers, tmp_path: pathlib.Path) -> None:
    """The object is changed on the server's disk behind its back (same size, one byte flipped)."""
    data = payload(200_000)
    with s3files_client.connect(servers.small_target) as client:
        file = client.upload(data, "assistants", filename=unique_name("tampered"))
        stored = [p for p in pathlib.Path(servers.small_storage_dir).rglob("*") if p.is_file() and p.read_bytes() == data]
        assert len(stored) == 1, f"expected the upload's bytes in one file under {servers.small_storage_dir}"
        tampered = bytearray(data)
        tampered[123_456] ^= 0xFF
        stored[0].write_bytes(bytes(tampered))

        dest = tmp_path / "tampered.bin"
        with pytest.raises(s3files_client.IntegrityError) as raised:
            client.download(file.id, str(dest))
        assert file.sha256 in str(raised.value) and raised.value.request_id
        assert os.listdir(tmp_path) == []  # neither the file nor its temporary

        # A range is not checked (there is nothing to check it against) and returns what is stored.
        part = io.BytesIO()
        client.download(file.id, part, offset=123_000, length=1000)
        assert part.getvalue() == bytes(tampered[123_000:124_000])

        async def aio_scenario() -> None:
            async with aclient(servers.small_target) as aio:
                with pytest.raises(s3files_client.IntegrityError):
                    await aio.download(file.id, io.BytesIO())

        run(aio_scenario())
        client.delete(file.id)


def test_a_failed_download_to_a_path_leaves_an_existing_file_alone(client: s3files_client.Client, tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "keep.txt"
    dest.write_bytes(b"previous content")
    with pytest.raises(s3files_client.NotFoundError) as raised:
        client.download("file-00000000000000000000000000000000", str(dest))
    assert raised.value.request_id
    assert dest.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_download_to_a_directory_or_a_text_file_is_refused(client: s3files_client.Client, tmp_path: pathlib.Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory"):
        client.download("file-00000000000000000000000000000000", str(tmp_path))
    with open(tmp_path / "text.txt", "w") as text:
        with pytest.raises(TypeError, match="binary mode"):
            client.download("file-00000000000000000000000000000000", text)  # type: ignore[arg-type]

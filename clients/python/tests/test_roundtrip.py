"""Upload and download round trips at the sizes that matter (empty, one byte, one chunk, the parts
threshold and past it), from every kind of source, with the sync and the asyncio client. The
threshold is lowered to 6 MiB with 5 MiB parts so that parts are exercised with small files."""

from __future__ import annotations

import io
import os
import pathlib
from typing import Any, BinaryIO

import pytest

import s3files_client
from faults import Recorder
from support import ProgressLog, Servers, aclient, payload, run, sha256, unique_name

MiB = 1024 * 1024
THRESHOLD = 6 * MiB
PART = 5 * MiB
SIZES = [0, 1, MiB, THRESHOLD, THRESHOLD + 1, 16 * MiB + 3]
SOURCES = ["bytes", "path", "file", "stream"]


def expected_parts(size: int, source: str) -> int:
    # Streams have no size up front, so they never go in parts.
    if source == "stream" or size <= THRESHOLD:
        return 0
    return -(-size // PART)


class Source:
    """The upload's source of one kind, and what the client can know about it."""

    def __init__(self, kind: str, data: bytes, tmp: pathlib.Path) -> None:
        self.kind = kind
        self.data = data
        self.path = tmp / "source.bin"
        self._open: BinaryIO | None = None
        if kind in ("path", "file"):
            self.path.write_bytes(data)

    def value(self) -> Any:
        if self.kind == "bytes":
            return self.data
        if self.kind == "path":
            return pathlib.Path(self.path)  # PathLike; str paths are used everywhere else
        if self.kind == "file":
            self._open = open(self.path, "rb")
            return self._open
        return io.BytesIO(self.data)  # no fileno: a stream

    def close(self) -> None:
        if self._open is not None:
            self._open.close()

    @property
    def total(self) -> int | None:
        return None if self.kind == "stream" else len(self.data)


def check_file(file: s3files_client.File, data: bytes, name: str) -> None:
    assert (file.bytes, file.sha256, file.filename, file.purpose, file.status) == (len(data), sha256(data), name, "assistants", "processed")
    assert file.id.startswith("file-")


@pytest.mark.parametrize("source_kind", SOURCES)
@pytest.mark.parametrize("size", SIZES)
def test_sync_round_trip(servers: Servers, tmp_path: pathlib.Path, size: int, source_kind: str) -> None:
    data = payload(size)
    source = Source(source_kind, data, tmp_path)
    name = unique_name(f"sync-{source_kind}")
    recorder = Recorder()
    progress = ProgressLog()
    with s3files_client.connect(servers.target, interceptors=recorder.sync()) as client:
        try:
            file = client.upload(source.value(), "assistants", filename=name, progress=progress, part_threshold=THRESHOLD, part_size=PART)
        finally:
            source.close()
        check_file(file, data, name)
        assert len(recorder.part_attempts) == expected_parts(size, source_kind)
        assert progress.last == (size, source.total)

        dest = tmp_path / "copy.bin"
        got = client.download(file.id, str(dest))
        assert got == file
        assert sha256(dest.read_bytes()) == sha256(data)
        assert sorted(os.listdir(tmp_path)) == sorted(["copy.bin"] + (["source.bin"] if source_kind in ("path", "file") else []))

        assert client.get(file.id) == file
        client.delete(file.id)
        with pytest.raises(s3files_client.NotFoundError):
            client.get(file.id)


@pytest.mark.parametrize("source_kind", SOURCES)
@pytest.mark.parametrize("size", SIZES)
def test_aio_round_trip(servers: Servers, tmp_path: pathlib.Path, size: int, source_kind: str) -> None:
    data = payload(size)
    source = Source(source_kind, data, tmp_path)
    name = unique_name(f"aio-{source_kind}")
    recorder = Recorder()
    progress = ProgressLog()

    async def scenario() -> None:
        async with aclient(servers.target, interceptors=recorder.aio()) as client:
            try:
                file = await client.upload(source.value(), "assistants", filename=name, progress=progress, part_threshold=THRESHOLD, part_size=PART)
            finally:
                source.close()
            check_file(file, data, name)
            assert len(recorder.part_attempts) == expected_parts(size, source_kind)
            assert progress.last == (size, source.total)

            buffer = io.BytesIO()
            got = await client.download(file.id, buffer)
            assert got == file
            assert sha256(buffer.getvalue()) == sha256(data)

            assert await client.get(file.id) == file
            await client.delete(file.id)
            with pytest.raises(s3files_client.NotFoundError):
                await client.get(file.id)

    run(scenario())


def test_defaults_name_the_file_after_the_path_and_guess_its_type(client: s3files_client.Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n')
    file = client.upload(str(path), "fine-tune", expires_after=3600)
    try:
        assert (file.filename, file.purpose) == ("train.jsonl", "fine-tune")
        assert file.mime_type in ("application/jsonl", "application/json", "application/octet-stream")
        assert file.expires_at == file.created_at + 3600
    finally:
        client.delete(file.id)


def test_a_file_object_is_read_from_its_current_position(client: s3files_client.Client, tmp_path: pathlib.Path) -> None:
    data = payload(100_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.seek(1000)
        file = client.upload(f, "assistants")
    try:
        assert (file.filename, file.bytes, file.sha256) == ("data.bin", len(data) - 1000, sha256(data[1000:]))
    finally:
        client.delete(file.id)


def test_ranges(client: s3files_client.Client) -> None:
    data = payload(3 * MiB + 17)
    file = client.upload(data, "assistants", filename=unique_name("ranges"))
    try:
        for offset, length in [(0, 1), (MiB - 3, MiB + 7), (len(data) - 5, None), (len(data), None), (10, 0)]:
            buffer = io.BytesIO()
            progress = ProgressLog()
            client.download(file.id, buffer, offset=offset, length=length, progress=progress)
            want = data[offset:] if length is None else data[offset : offset + length]
            assert buffer.getvalue() == want, (offset, length)
            assert progress.last == (len(want), len(want))
        with pytest.raises(s3files_client.InvalidArgumentError) as err:
            client.download(file.id, io.BytesIO(), offset=len(data) + 1)
        assert err.value.request_id
    finally:
        client.delete(file.id)

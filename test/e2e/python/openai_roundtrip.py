"""Drives the service's REST API with the official Python `openai` SDK, unchanged.

Usage: python openai_roundtrip.py <base_url ending in /v1> <temp dir>
Exits non-zero (assertion traceback on stderr) on the first failed check; prints a JSON summary
on success.
"""
import hashlib
import inspect
import json
import os
import sys
from pathlib import Path

import openai

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expect_error(cls, fn, status):
    """Runs fn, which must raise exactly `cls` with HTTP `status`; returns the error."""
    try:
        result = fn()
    except openai.APIStatusError as e:
        assert isinstance(e, cls), f"expected {cls.__name__}, got {type(e).__name__} {e.status_code}: {e.body!r}"
        assert e.status_code == status, f"expected HTTP {status}, got {e.status_code}: {e.body!r}"
        return e
    raise AssertionError(f"expected {cls.__name__}, the call returned {result!r}")


def main() -> None:
    base_url, tmp = sys.argv[1], Path(sys.argv[2])
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    summary = {"openai_version": openai.__version__}

    # --- files.create with a 3 MiB file from disk -----------------------------------------
    big_data = os.urandom(3 * MiB)
    big_path = tmp / "big.bin"
    big_path.write_bytes(big_data)
    with big_path.open("rb") as fh:
        big = client.files.create(file=fh, purpose="assistants")
    assert big.object == "file", f"object: {big!r}"
    assert big.status == "processed", f"status: {big!r}"
    assert big.bytes == len(big_data), f"bytes {big.bytes} != {len(big_data)}"
    assert big.filename == "big.bin", f"filename: {big.filename!r}"
    assert big.purpose == "assistants", f"purpose: {big.purpose!r}"
    assert big.expires_at is None, f"expires_at: {big.expires_at!r}"
    assert isinstance(big.created_at, int) and big.created_at > 0, f"created_at: {big.created_at!r}"

    # --- retrieve and content ---------------------------------------------------------------
    got = client.files.retrieve(big.id)
    assert (got.id, got.bytes, got.filename, got.purpose, got.created_at) == (
        big.id, big.bytes, big.filename, big.purpose, big.created_at,
    ), f"retrieve: {got!r} vs create: {big!r}"
    content = client.files.content(big.id)
    assert sha256(content.read()) == sha256(big_data), "content SHA-256 differs from the uploaded file"

    # --- list: purpose filter, auto-pagination over pages of 3, asc vs desc ------------------
    small_ids = []
    for i in range(7):
        f = client.files.create(file=(f"small-{i}.txt", f"small file {i}\n".encode(), "text/plain"), purpose="user_data")
        assert f.purpose == "user_data", f"purpose: {f!r}"
        small_ids.append(f.id)
    first_page = client.files.list(purpose="user_data", limit=3, order="asc")
    assert len(first_page.data) == 3, f"first page has {len(first_page.data)} items"
    assert first_page.has_more is True, f"has_more on the first page: {first_page.has_more!r}"
    asc = list(first_page)  # iterating the page object fetches the following pages
    asc_ids = [f.id for f in asc]
    assert len(asc_ids) == 7, f"asc listing yielded {len(asc_ids)} files: {asc_ids}"
    assert len(set(asc_ids)) == 7, f"duplicates in the asc listing: {asc_ids}"
    assert set(asc_ids) == set(small_ids), f"asc listing {asc_ids} != created {small_ids}"
    assert all(f.purpose == "user_data" for f in asc), "purpose filter let another purpose through"
    created = [f.created_at for f in asc]
    assert created == sorted(created), f"asc listing not ordered by created_at: {created}"
    desc_ids = [f.id for f in client.files.list(purpose="user_data", limit=3, order="desc")]
    assert desc_ids == asc_ids[::-1], f"desc {desc_ids} is not the reverse of asc {asc_ids}"
    summary["listed"] = len(asc_ids)

    # --- delete, then 404 -------------------------------------------------------------------
    deleted = client.files.delete(big.id)
    assert deleted.deleted is True and deleted.id == big.id, f"delete: {deleted!r}"
    assert deleted.object == "file", f"delete object: {deleted.object!r}"
    expect_error(openai.NotFoundError, lambda: client.files.retrieve(big.id), 404)
    expect_error(openai.NotFoundError, lambda: client.files.content(big.id).read(), 404)

    # --- invalid purpose: 400 with param "purpose" ------------------------------------------
    e = expect_error(
        openai.BadRequestError,
        lambda: client.files.create(file=("x.txt", b"x", "text/plain"), purpose="nope"),
        400,
    )
    if hasattr(e, "param"):
        assert e.param == "purpose", f"e.param: {e.param!r}; body {e.body!r}"
        summary["error_param_via"] = "e.param"
    else:
        assert isinstance(e.body, dict) and e.body.get("param") == "purpose", f"body: {e.body!r}"
        summary["error_param_via"] = "e.body['param']"
    assert e.type == "invalid_request_error", f"e.type: {e.type!r}"

    # --- expires_after ----------------------------------------------------------------------
    if "expires_after" in inspect.signature(client.files.create).parameters:
        exp = client.files.create(
            file=("expiring.txt", b"expiring", "text/plain"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        assert exp.expires_at == exp.created_at + 3600, f"expires_at {exp.expires_at} != created_at {exp.created_at} + 3600"
        assert client.files.retrieve(exp.id).expires_at == exp.expires_at, "retrieve lost expires_at"
        summary["expires_after"] = "checked"
    else:
        summary["expires_after"] = "skipped: this SDK's files.create has no expires_after"

    # --- uploads: the SDK's chunked helper --------------------------------------------------
    if hasattr(client.uploads, "upload_file_chunked"):
        chunked_data = os.urandom(2 * MiB + MiB // 2)  # parts of 1 MiB, 1 MiB, 0.5 MiB
        chunked_path = tmp / "chunked.bin"
        chunked_path.write_bytes(chunked_data)
        up = client.uploads.upload_file_chunked(
            file=chunked_path, mime_type="application/octet-stream", purpose="batch", part_size=MiB,
        )
        assert up.object == "upload", f"object: {up!r}"
        assert up.status == "completed", f"status: {up!r}"
        assert up.bytes == len(chunked_data), f"upload bytes: {up.bytes}"
        assert up.file is not None, f"completed upload has no file: {up!r}"
        assert up.file.bytes == len(chunked_data), f"file bytes: {up.file.bytes}"
        assert up.file.filename == "chunked.bin", f"file filename: {up.file.filename!r}"
        assert up.file.purpose == "batch", f"file purpose: {up.file.purpose!r}"
        assert sha256(client.files.content(up.file.id).read()) == sha256(chunked_data), "chunked upload content differs"
        summary["upload_file_chunked"] = "checked"
    else:
        summary["upload_file_chunked"] = "skipped: not in this SDK"

    # --- uploads: create, two parts, complete with md5 --------------------------------------
    p1, p2 = b"hello " * 1000, b"world!" * 500
    whole = p1 + p2
    up = client.uploads.create(bytes=len(whole), filename="manual.txt", mime_type="text/plain", purpose="assistants")
    assert up.object == "upload" and up.status == "pending", f"create: {up!r}"
    assert (up.bytes, up.filename, up.purpose) == (len(whole), "manual.txt", "assistants"), f"create: {up!r}"
    assert up.expires_at > up.created_at, f"expires_at {up.expires_at} <= created_at {up.created_at}"
    part1 = client.uploads.parts.create(up.id, data=p1)
    part2 = client.uploads.parts.create(up.id, data=p2)
    for part in (part1, part2):
        assert part.object == "upload.part" and part.upload_id == up.id, f"part: {part!r}"
    assert part1.id != part2.id, "both parts got the same id"
    done = client.uploads.complete(up.id, part_ids=[part1.id, part2.id], md5=hashlib.md5(whole).hexdigest())
    assert done.id == up.id and done.status == "completed", f"complete: {done!r}"
    assert done.file is not None and done.file.bytes == len(whole), f"complete file: {done.file!r}"
    assert done.file.filename == "manual.txt" and done.file.purpose == "assistants", f"complete file: {done.file!r}"
    assert client.files.content(done.file.id).read() == whole, "manual upload content differs"

    # --- uploads: cancel, then adding a part conflicts ---------------------------------------
    other = client.uploads.create(bytes=10, filename="cancelled.txt", mime_type="text/plain", purpose="assistants")
    cancelled = client.uploads.cancel(other.id)
    assert cancelled.id == other.id and cancelled.status == "cancelled", f"cancel: {cancelled!r}"
    expect_error(openai.ConflictError, lambda: client.uploads.parts.create(other.id, data=b"0123456789"), 409)

    summary["ok"] = True
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Listing 250 files pages through them all: with page_size=100 that is three ListFiles calls,
and every file comes exactly once, in either order, filtered by purpose. The files belong to a
principal of their own (an API key on the auth server), so nothing else is in the listing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import s3files_client
from faults import Recorder
from support import Servers, aclient, run

COUNT = 250
BATCH = 30  # of the 250, this many are "batch"; the rest "assistants"


@pytest.fixture(scope="module")
def uploaded(servers: Servers) -> dict[str, str]:
    """id → purpose of the 250 files (uploaded 8 at a time)."""
    with s3files_client.connect(servers.auth_target, servers.list_token) as client:
        assert list(client.list()) == [], "the listing principal must start with no files"

        def upload(i: int) -> tuple[str, str]:
            purpose = "batch" if i < BATCH else "assistants"
            return client.upload(f"{i}\n".encode(), purpose, filename=f"list-{i:03}.txt").id, purpose

        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(upload, range(COUNT)))


def test_sync_list_pages_through_every_file_once(servers: Servers, uploaded: dict[str, str]) -> None:
    recorder = Recorder()
    with s3files_client.connect(servers.auth_target, servers.list_token, interceptors=recorder.sync()) as client:
        newest_first = [f.id for f in client.list(page_size=100)]
        assert recorder.list_requests == 3
        assert sorted(newest_first) == sorted(uploaded) and len(set(newest_first)) == COUNT

        oldest_first = [f.id for f in client.list(order="asc", page_size=100)]
        assert oldest_first == list(reversed(newest_first))

        batch = [f for f in client.list(purpose="batch", page_size=7)]
        assert sorted(f.id for f in batch) == sorted(i for i, p in uploaded.items() if p == "batch")
        assert {f.purpose for f in batch} == {"batch"}


def test_aio_list_pages_through_every_file_once(servers: Servers, uploaded: dict[str, str]) -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        async with aclient(servers.auth_target, token=servers.list_token, interceptors=recorder.aio()) as client:
            return [f.id async for f in client.list(page_size=100)]

    ids = run(scenario())
    assert recorder.list_requests == 3
    assert sorted(ids) == sorted(uploaded) and len(set(ids)) == COUNT


def test_list_is_lazy(servers: Servers, uploaded: dict[str, str]) -> None:
    recorder = Recorder()
    with s3files_client.connect(servers.auth_target, servers.list_token, interceptors=recorder.sync()) as client:
        pages = client.list(page_size=100)
        assert recorder.list_requests == 0
        first = [next(pages) for _ in range(101)]
        assert recorder.list_requests == 2 and len({f.id for f in first}) == 101


def test_bad_list_arguments_are_refused_before_any_call(client: s3files_client.Client) -> None:
    with pytest.raises(ValueError, match="page_size"):
        client.list(page_size=0)
    with pytest.raises(ValueError, match="order"):
        client.list(order="newest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown purpose 'training'"):
        client.list(purpose="training")

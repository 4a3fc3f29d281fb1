"""The asyncio client: `async with s3files_client.aio.connect(target) as client: ...`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc.aio

from ._aio import AsyncClient
from ._channel import DEFAULT_TIMEOUT_S, ChannelOptions, PathLike
from ._retry import DEFAULT_RETRY, RetryPolicy

__all__ = ["AsyncClient", "connect"]


def connect(
    target: str,
    token: str | None = None,
    *,
    tls: bool | None = None,
    ca_file: PathLike | None = None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    transfer_timeout: float | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    options: ChannelOptions = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> AsyncClient:
    """An AsyncClient for the server at `target`; the arguments are s3files_client.connect's."""
    return AsyncClient(
        target,
        token,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        timeout=timeout,
        transfer_timeout=transfer_timeout,
        retry=retry,
        options=options,
        interceptors=interceptors,
    )

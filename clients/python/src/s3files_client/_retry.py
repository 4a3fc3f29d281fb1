"""When and how long to wait before trying a part or a download again."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

from ._errors import FilesError, is_size_limit


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n (from 1) waits a random time up to
    min(max_backoff, initial_backoff * multiplier ** (n - 1)) seconds before the next one."""

    #: Tries of one part, or consecutive failed tries of a download that received nothing between them.
    max_attempts: int = 5
    initial_backoff: float = 0.25
    max_backoff: float = 8.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if not self.initial_backoff >= 0 or not self.max_backoff >= self.initial_backoff:
            raise ValueError("backoffs must satisfy 0 <= initial_backoff <= max_backoff")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(0, ceiling)


#: What clients use unless given a policy.
DEFAULT_RETRY = RetryPolicy()


def part_is_retryable(err: FilesError) -> bool:
    """A part is sent again after the server was unreachable or busy, never after a size limit
    (the same part would be refused again)."""
    if err.code == grpc.StatusCode.UNAVAILABLE:
        return True
    return err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and not is_size_limit(err.code, err.message)


def download_is_resumable(err: FilesError) -> bool:
    """A download resumes after the connection broke or the server was briefly unreachable;
    grpcio reports both (a reset, a closed socket, a refused reconnect) as UNAVAILABLE."""
    return err.code == grpc.StatusCode.UNAVAILABLE

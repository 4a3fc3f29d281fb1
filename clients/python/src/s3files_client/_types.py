"""The File the clients return, and the conversions between OpenAI's names and the proto enums."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal, Union

from ._gen.files.v1 import files_pb2 as pb

Purpose = Literal[
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "vision",
    "user_data",
    "evals",
]
Order = Literal["asc", "desc"]
#: Seconds after creation, or a timedelta.
ExpiresAfter = Union[int, datetime.timedelta]

_PURPOSES: dict[str, pb.FilePurpose] = {
    "assistants": pb.FILE_PURPOSE_ASSISTANTS,
    "assistants_output": pb.FILE_PURPOSE_ASSISTANTS_OUTPUT,
    "batch": pb.FILE_PURPOSE_BATCH,
    "batch_output": pb.FILE_PURPOSE_BATCH_OUTPUT,
    "fine-tune": pb.FILE_PURPOSE_FINE_TUNE,
    "fine-tune-results": pb.FILE_PURPOSE_FINE_TUNE_RESULTS,
    "vision": pb.FILE_PURPOSE_VISION,
    "user_data": pb.FILE_PURPOSE_USER_DATA,
    "evals": pb.FILE_PURPOSE_EVALS,
}
_PURPOSE_NAMES = {value: name for name, value in _PURPOSES.items()}
_STATUS_NAMES = {pb.FILE_STATUS_UPLOADED: "uploaded", pb.FILE_STATUS_PROCESSED: "processed", pb.FILE_STATUS_ERROR: "error"}
_ORDERS: dict[str, pb.ListOrder] = {"asc": pb.LIST_ORDER_ASC, "desc": pb.LIST_ORDER_DESC}


@dataclass(frozen=True)
class File:
    """A stored file's metadata, with OpenAI's field names."""

    id: str
    #: Size in bytes.
    bytes: int
    #: Unix seconds.
    created_at: int
    #: Unix seconds; None when the file never expires.
    expires_at: int | None
    filename: str
    purpose: str
    mime_type: str
    #: Lowercase hex SHA-256 of the content, recorded by the server.
    sha256: str
    status: str

    @classmethod
    def from_proto(cls, message: pb.File) -> File:
        return cls(
            id=message.id,
            bytes=message.bytes,
            created_at=message.created_at,
            expires_at=message.expires_at if message.HasField("expires_at") else None,
            filename=message.filename,
            purpose=_PURPOSE_NAMES.get(message.purpose, str(message.purpose)),
            mime_type=message.mime_type,
            sha256=message.sha256,
            status=_STATUS_NAMES.get(message.status, "unspecified"),
        )


def purpose_value(purpose: str) -> pb.FilePurpose:
    if not isinstance(purpose, str) or purpose not in _PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: use one of {', '.join(sorted(_PURPOSES))}")
    return _PURPOSES[purpose]


def order_value(order: str | None) -> pb.ListOrder:
    if order is None:
        return pb.LIST_ORDER_UNSPECIFIED
    if order not in _ORDERS:
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    return _ORDERS[order]


def expires_after_message(expires_after: ExpiresAfter | None) -> pb.ExpiresAfter | None:
    if expires_after is None:
        return None
    if isinstance(expires_after, datetime.timedelta):
        seconds = expires_after.total_seconds()
        if seconds != int(seconds):
            raise ValueError(f"expires_after must be whole seconds, got {expires_after}")
        expires_after = int(seconds)
    if isinstance(expires_after, bool) or not isinstance(expires_after, int) or expires_after <= 0:
        raise ValueError(f"expires_after must be a positive number of seconds or a timedelta, got {expires_after!r}")
    return pb.ExpiresAfter(anchor=pb.EXPIRES_AFTER_ANCHOR_CREATED_AT, seconds=expires_after)


def page_size_value(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 10_000:
        raise ValueError(f"page_size must be an int from 1 to 10000, got {page_size!r}")
    return page_size

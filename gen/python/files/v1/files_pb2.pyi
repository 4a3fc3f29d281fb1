from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FilePurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_PURPOSE_UNSPECIFIED: _ClassVar[FilePurpose]
    FILE_PURPOSE_ASSISTANTS: _ClassVar[FilePurpose]
    FILE_PURPOSE_ASSISTANTS_OUTPUT: _ClassVar[FilePurpose]
    FILE_PURPOSE_BATCH: _ClassVar[FilePurpose]
    FILE_PURPOSE_BATCH_OUTPUT: _ClassVar[FilePurpose]
    FILE_PURPOSE_FINE_TUNE: _ClassVar[FilePurpose]
    FILE_PURPOSE_FINE_TUNE_RESULTS: _ClassVar[FilePurpose]
    FILE_PURPOSE_VISION: _ClassVar[FilePurpose]
    FILE_PURPOSE_USER_DATA: _ClassVar[FilePurpose]
    FILE_PURPOSE_EVALS: _ClassVar[FilePurpose]

class FileStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_STATUS_UNSPECIFIED: _ClassVar[FileStatus]
    FILE_STATUS_UPLOADED: _ClassVar[FileStatus]
    FILE_STATUS_PROCESSED: _ClassVar[FileStatus]
    FILE_STATUS_ERROR: _ClassVar[FileStatus]

class ExpiresAfterAnchor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPIRES_AFTER_ANCHOR_UNSPECIFIED: _ClassVar[ExpiresAfterAnchor]
    EXPIRES_AFTER_ANCHOR_CREATED_AT: _ClassVar[ExpiresAfterAnchor]

class ListOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIST_ORDER_UNSPECIFIED: _ClassVar[ListOrder]
    LIST_ORDER_ASC: _ClassVar[ListOrder]
    LIST_ORDER_DESC: _ClassVar[ListOrder]

class UploadStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_STATUS_UNSPECIFIED: _ClassVar[UploadStatus]
    UPLOAD_STATUS_PENDING: _ClassVar[UploadStatus]
    UPLOAD_STATUS_COMPLETED: _ClassVar[UploadStatus]
    UPLOAD_STATUS_CANCELLED: _ClassVar[UploadStatus]
    UPLOAD_STATUS_EXPIRED: _ClassVar[UploadStatus]
FILE_PURPOSE_UNSPECIFIED: FilePurpose
FILE_PURPOSE_ASSISTANTS: FilePurpose
FILE_PURPOSE_ASSISTANTS_OUTPUT: FilePurpose
FILE_PURPOSE_BATCH: FilePurpose
FILE_PURPOSE_BATCH_OUTPUT: FilePurpose
FILE_PURPOSE_FINE_TUNE: FilePurpose
FILE_PURPOSE_FINE_TUNE_RESULTS: FilePurpose
FILE_PURPOSE_VISION: FilePurpose
FILE_PURPOSE_USER_DATA: FilePurpose
FILE_PURPOSE_EVALS: FilePurpose
FILE_STATUS_UNSPECIFIED: FileStatus
FILE_STATUS_UPLOADED: FileStatus
FILE_STATUS_PROCESSED: FileStatus
FILE_STATUS_ERROR: FileStatus
EXPIRES_AFTER_ANCHOR_UNSPECIFIED: ExpiresAfterAnchor
EXPIRES_AFTER_ANCHOR_CREATED_AT: ExpiresAfterAnchor
LIST_ORDER_UNSPECIFIED: ListOrder
LIST_ORDER_ASC: ListOrder
LIST_ORDER_DESC: ListOrder
UPLOAD_STATUS_UNSPECIFIED: UploadStatus
UPLOAD_STATUS_PENDING: UploadStatus
UPLOAD_STATUS_COMPLETED: UploadStatus
UPLOAD_STATUS_CANCELLED: UploadStatus
UPLOAD_STATUS_EXPIRED: UploadStatus

class ExpiresAfter(_message.Message):
    __slots__ = ("anchor", "seconds")
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    anchor: ExpiresAfterAnchor
    seconds: int
    def __init__(self, anchor: _Optional[_Union[ExpiresAfterAnchor, str]] = ..., seconds: _Optional[int] = ...) -> None: ...

class File(_message.Message):
    __slots__ = ("id", "bytes", "created_at", "expires_at", "filename", "purpose", "mime_type", "sha256", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: FilePurpose
    mime_type: str
    sha256: str
    status: FileStatus
    def __init__(self, id: _Optional[str] = ..., bytes: _Optional[int] = ..., created_at: _Optional[int] = ..., expires_at: _Optional[int] = ..., filename: _Optional[str] = ..., purpose: _Optional[_Union[FilePurpose, str]] = ..., mime_type: _Optional[str] = ..., sha256: _Optional[str] = ..., status: _Optional[_Union[FileStatus, str]] = ...) -> None: ...

class UploadFileMetadata(_message.Message):
    __slots__ = ("filename", "purpose", "mime_type", "expires_after", "size_bytes", "sha256")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    filename: str
    purpose: FilePurpose
    mime_type: str
    expires_after: ExpiresAfter
    size_bytes: int
    sha256: str
    def __init__(self, filename: _Optional[str] = ..., purpose: _Optional[_Union[FilePurpose, str]] = ..., mime_type: _Optional[str] = ..., expires_after: _Optional[_Union[ExpiresAfter, _Mapping]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadFileMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadFileMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: File
    def __init__(self, file: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("file_id", "offset", "length")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    offset: int
    length: int
    def __init__(self, file_id: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class DownloadFileResponse(_message.Message):
    __slots__ = ("file", "chunk")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    file: File
    chunk: bytes
    def __init__(self, file: _Optional[_Union[File, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class GetFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: File
    def __init__(self, file: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("after", "limit", "order", "purpose")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    after: str
    limit: int
    order: ListOrder
    purpose: FilePurpose
    def __init__(self, after: _Optional[str] = ..., limit: _Optional[int] = ..., order: _Optional[_Union[ListOrder, str]] = ..., purpose: _Optional[_Union[FilePurpose, str]] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("data", "has_more", "first_id", "last_id")
    DATA_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    FIRST_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[File]
    has_more: bool
    first_id: str
    last_id: str
    def __init__(self, data: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., has_more: _Optional[bool] = ..., first_id: _Optional[str] = ..., last_id: _Optional[str] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ("id", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: str
    deleted: bool
    def __init__(self, id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("id", "filename", "purpose", "bytes", "mime_type", "created_at", "expires_at", "status", "file")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    purpose: FilePurpose
    bytes: int
    mime_type: str
    created_at: int
    expires_at: int
    status: UploadStatus
    file: File
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., purpose: _Optional[_Union[FilePurpose, str]] = ..., bytes: _Optional[int] = ..., mime_type: _Optional[str] = ..., created_at: _Optional[int] = ..., expires_at: _Optional[int] = ..., status: _Optional[_Union[UploadStatus, str]] = ..., file: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class UploadPart(_message.Message):
    __slots__ = ("id", "upload_id", "created_at", "bytes", "sha256")
    ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    id: str
    upload_id: str
    created_at: int
    bytes: int
    sha256: str
    def __init__(self, id: _Optional[str] = ..., upload_id: _Optional[str] = ..., created_at: _Optional[int] = ..., bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    __slots__ = ("filename", "purpose", "bytes", "mime_type", "expires_after")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_FIELD_NUMBER: _ClassVar[int]
    filename: str
    purpose: FilePurpose
    bytes: int
    mime_type: str
    expires_after: ExpiresAfter
    def __init__(self, filename: _Optional[str] = ..., purpose: _Optional[_Union[FilePurpose, str]] = ..., bytes: _Optional[int] = ..., mime_type: _Optional[str] = ..., expires_after: _Optional[_Union[ExpiresAfter, _Mapping]] = ...) -> None: ...

class CreateUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class AddUploadPartRequest(_message.Message):
    __slots__ = ("upload_id", "data")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    data: bytes
    def __init__(self, upload_id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class AddUploadPartResponse(_message.Message):
    __slots__ = ("part",)
    PART_FIELD_NUMBER: _ClassVar[int]
    part: UploadPart
    def __init__(self, part: _Optional[_Union[UploadPart, _Mapping]] = ...) -> None: ...

class CompleteUploadRequest(_message.Message):
    __slots__ = ("upload_id", "part_ids", "md5")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    PART_IDS_FIELD_NUMBER: _ClassVar[int]
    MD5_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    part_ids: _containers.RepeatedScalarFieldContainer[str]
    md5: str
    def __init__(self, upload_id: _Optional[str] = ..., part_ids: _Optional[_Iterable[str]] = ..., md5: _Optional[str] = ...) -> None: ...

class CompleteUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class CancelUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class CancelUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class GetUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

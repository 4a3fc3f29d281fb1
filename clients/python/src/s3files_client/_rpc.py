"""The FilesService methods as typed grpcio callables, for a sync and for an asyncio channel.

Method names come from the generated service descriptor. The three methods that carry file bytes
use the encoders of _wire; every other message is the generated class's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from ._gen.files.v1 import files_pb2 as pb
from ._wire import DownloadItem, PartRequest, UploadItem, decode_download_response, encode_part_request, encode_upload_request

_SERVICE = pb.DESCRIPTOR.services_by_name["FilesService"]


def method_path(name: str) -> str:
    return f"/{_SERVICE.full_name}/{_SERVICE.methods_by_name[name].name}"


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _parser(cls: Any) -> Callable[[bytes], Any]:
    parse: Callable[[bytes], Any] = cls.FromString
    return parse


class SyncRpcs:
    def __init__(self, channel: grpc.Channel) -> None:
        def unary(name: str, response: Any) -> Any:
            return channel.unary_unary(method_path(name), request_serializer=_serialize, response_deserializer=_parser(response))

        self.upload_file: grpc.StreamUnaryMultiCallable[UploadItem, pb.UploadFileResponse] = channel.stream_unary(
            method_path("UploadFile"), request_serializer=encode_upload_request, response_deserializer=_parser(pb.UploadFileResponse)
        )
        self.download_file: grpc.UnaryStreamMultiCallable[pb.DownloadFileRequest, DownloadItem] = channel.unary_stream(
            method_path("DownloadFile"), request_serializer=_serialize, response_deserializer=decode_download_response
        )
        self.add_upload_part: grpc.UnaryUnaryMultiCallable[PartRequest, pb.AddUploadPartResponse] = channel.unary_unary(
            method_path("AddUploadPart"), request_serializer=encode_part_request, response_deserializer=_parser(pb.AddUploadPartResponse)
        )
        self.get_file: grpc.UnaryUnaryMultiCallable[pb.GetFileRequest, pb.GetFileResponse] = unary("GetFile", pb.GetFileResponse)
        self.list_files: grpc.UnaryUnaryMultiCallable[pb.ListFilesRequest, pb.ListFilesResponse] = unary("ListFiles", pb.ListFilesResponse)
        self.delete_file: grpc.UnaryUnaryMultiCallable[pb.DeleteFileRequest, pb.DeleteFileResponse] = unary("DeleteFile", pb.DeleteFileResponse)
        self.create_upload: grpc.UnaryUnaryMultiCallable[pb.CreateUploadRequest, pb.CreateUploadResponse] = unary(
            "CreateUpload", pb.CreateUploadResponse
        )
        self.complete_upload: grpc.UnaryUnaryMultiCallable[pb.CompleteUploadRequest, pb.CompleteUploadResponse] = unary(
            "CompleteUpload", pb.CompleteUploadResponse
        )
        self.cancel_upload: grpc.UnaryUnaryMultiCallable[pb.CancelUploadRequest, pb.CancelUploadResponse] = unary(
            "CancelUpload", pb.CancelUploadResponse
        )


class AsyncRpcs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        def unary(name: str, response: Any) -> Any:
            return channel.unary_unary(method_path(name), request_serializer=_serialize, response_deserializer=_parser(response))

        self.upload_file: grpc.aio.StreamUnaryMultiCallable[UploadItem, pb.UploadFileResponse] = channel.stream_unary(
            method_path("UploadFile"), request_serializer=encode_upload_request, response_deserializer=_parser(pb.UploadFileResponse)
        )
        self.download_file: grpc.aio.UnaryStreamMultiCallable[pb.DownloadFileRequest, DownloadItem] = channel.unary_stream(
            method_path("DownloadFile"), request_serializer=_serialize, response_deserializer=decode_download_response
        )
        self.add_upload_part: grpc.aio.UnaryUnaryMultiCallable[PartRequest, pb.AddUploadPartResponse] = channel.unary_unary(
            method_path("AddUploadPart"), request_serializer=encode_part_request, response_deserializer=_parser(pb.AddUploadPartResponse)
        )
        self.get_file: grpc.aio.UnaryUnaryMultiCallable[pb.GetFileRequest, pb.GetFileResponse] = unary("GetFile", pb.GetFileResponse)
        self.list_files: grpc.aio.UnaryUnaryMultiCallable[pb.ListFilesRequest, pb.ListFilesResponse] = unary("ListFiles", pb.ListFilesResponse)
        self.delete_file: grpc.aio.UnaryUnaryMultiCallable[pb.DeleteFileRequest, pb.DeleteFileResponse] = unary(
            "DeleteFile", pb.DeleteFileResponse
        )
        self.create_upload: grpc.aio.UnaryUnaryMultiCallable[pb.CreateUploadRequest, pb.CreateUploadResponse] = unary(
            "CreateUpload", pb.CreateUploadResponse
        )
        self.complete_upload: grpc.aio.UnaryUnaryMultiCallable[pb.CompleteUploadRequest, pb.CompleteUploadResponse] = unary(
            "CompleteUpload", pb.CompleteUploadResponse
        )
        self.cancel_upload: grpc.aio.UnaryUnaryMultiCallable[pb.CancelUploadRequest, pb.CancelUploadResponse] = unary(
            "CancelUpload", pb.CancelUploadResponse
        )

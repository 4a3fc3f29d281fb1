"""The generated code for proto/files/v1/files.proto: the messages (`files_pb2`) and the grpcio
stubs (`files_pb2_grpc`), for calls the clients do not wrap, e.g.

    from s3files_client.pb import files_pb2, files_pb2_grpc
    stub = files_pb2_grpc.FilesServiceStub(client.channel)
    stub.GetUpload(files_pb2.GetUploadRequest(upload_id=...), metadata=...)
"""

from ._gen.files.v1 import files_pb2 as files_pb2
from ._gen.files.v1 import files_pb2_grpc as files_pb2_grpc

__all__ = ["files_pb2", "files_pb2_grpc"]

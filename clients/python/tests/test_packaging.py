"""What the installed wheel is: the library and the generated code under s3files_client, typed,
and no top-level `files` package of its own (no server needed)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import sys
import sysconfig

import s3files_client
import s3files_client.aio
from s3files_client.pb import files_pb2, files_pb2_grpc


def test_imported_from_the_installed_wheel() -> None:
    package = pathlib.Path(s3files_client.__file__).resolve().parent
    assert package.parent == pathlib.Path(sysconfig.get_paths()["purelib"]).resolve(), package


def test_the_generated_code_lives_under_the_package() -> None:
    assert files_pb2.__name__ == "s3files_client._gen.files.v1.files_pb2"
    assert files_pb2.File.__module__ == files_pb2.__name__
    # (getattr: the alias is a private import of the generated module)
    assert getattr(files_pb2_grpc, "files_dot_v1_dot_files__pb2") is files_pb2
    assert not any(name == "files" or name.startswith("files.") for name in sys.modules)
    assert importlib.util.find_spec("files") is None
    distribution = importlib.metadata.distribution("s3-files-service-client")
    top_level = {pathlib.PurePosixPath(str(f)).parts[0] for f in distribution.files or []}
    assert top_level == {"s3files_client", f"s3_files_service_client-{s3files_client.__version__}.dist-info"}


def test_typed() -> None:
    package = pathlib.Path(s3files_client.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_gen" / "files" / "v1" / "files_pb2.pyi").is_file()


def test_the_requirements_match_the_generated_code() -> None:
    requires = sorted(importlib.metadata.requires("s3-files-service-client") or [])
    assert requires == ["grpcio<2,>=1.85.1", "protobuf<8,>=7.35.1"]
    assert importlib.metadata.version("s3-files-service-client") == s3files_client.__version__

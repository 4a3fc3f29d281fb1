"""The build hook's rewriting of the generated imports (run in the build venv, against the
hook's source; test/e2e/python-library.test.ts runs it before building the wheel)."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import hatch_build  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_imports_and_module_names_move_under_the_package() -> None:
    grpc_module = "import grpc\nfrom files.v1 import files_pb2 as files_dot_v1_dot_files__pb2\n"
    assert hatch_build.rewrite_module(grpc_module, "files.v1.files_pb2_grpc") == (
        "import grpc\nfrom s3files_client._gen.files.v1 import files_pb2 as files_dot_v1_dot_files__pb2\n"
    )
    messages = "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'files.v1.files_pb2', _globals)\n"
    assert "'s3files_client._gen.files.v1.files_pb2'" in hatch_build.rewrite_module(messages, "files.v1.files_pb2")
    # A dependency between generated files, as protoc writes it in a .pyi or _pb2.py.
    dependency = "from files.v1 import common_pb2 as _common_pb2\nfrom files import v2\n"
    assert hatch_build.rewrite_module(dependency, "x") == (
        "from s3files_client._gen.files.v1 import common_pb2 as _common_pb2\nfrom s3files_client._gen.files import v2\n"
    )


def test_wire_names_and_other_packages_stay() -> None:
    text = "'/files.v1.FilesService/UploadFile'\nfrom google.protobuf import descriptor\nfrom filesystem import x\n"
    assert hatch_build.rewrite_module(text, "x") == text


@pytest.mark.parametrize("text", ["import files.v1.files_pb2\n", "x = importlib.import_module('files.v1.files_pb2')\n"])
def test_references_it_cannot_rewrite_fail_the_build(text: str) -> None:
    with pytest.raises(hatch_build.RewriteError):
        hatch_build.rewrite_module(text, "x")


def test_the_repository_gen_python_rewrites_completely(tmp_path: pathlib.Path) -> None:
    written = hatch_build.write_package(str(REPO / "gen" / "python"), str(tmp_path))
    assert sorted(written.values()) == [
        "s3files_client/_gen/__init__.py",
        "s3files_client/_gen/files/__init__.py",
        "s3files_client/_gen/files/v1/__init__.py",
        "s3files_client/_gen/files/v1/files_pb2.py",
        "s3files_client/_gen/files/v1/files_pb2.pyi",
        "s3files_client/_gen/files/v1/files_pb2_grpc.py",
    ]
    for path in written:
        assert "from files" not in pathlib.Path(path).read_text()


def test_a_missing_gen_dir_names_the_fix(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm run generate"):
        hatch_build.write_package(os.fspath(tmp_path / "nowhere"), str(tmp_path))

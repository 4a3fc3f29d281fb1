"""Hatchling build hook: puts the generated code of gen/python into the wheel as the private
package s3files_client._gen, so the wheel installs no top-level `files` package (a generic name that
would collide in users' site-packages).

protoc writes modules that import each other as top-level `files.v1...`; `rewrite_module` turns
those imports (and the module names protobuf records for its messages) into
`s3files_client._gen.files.v1...`, and refuses any reference it does not know how to rewrite, so a
change in the generator fails the build instead of producing a wheel that imports `files`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any

PACKAGE = "s3files_client._gen"
# The top-level package protoc generates for proto/files/v1 (package files.v1).
GENERATED_ROOT = "files"
# Inside an sdist the generated code sits here (pyproject.toml's sdist force-include).
SDIST_GEN_DIR = "gen-python"

_FROM_IMPORT = re.compile(rf"^(\s*from\s+){GENERATED_ROOT}(\.[\w.]+)?(\s+import\s)", re.MULTILINE)
_PLAIN_IMPORT = re.compile(rf"^\s*import\s+{GENERATED_ROOT}\b", re.MULTILINE)
# _builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'files.v1.files_pb2', _globals)
_MODULE_NAME = re.compile(rf"(BuildTopDescriptorsAndMessages\(\s*DESCRIPTOR\s*,\s*['\"]){GENERATED_ROOT}\.")
_LEFTOVER = re.compile(rf"(?<![\w.]){GENERATED_ROOT}(\.\w+)*\.\w+_pb2(_grpc)?\b")


class RewriteError(ValueError):
    """A generated module refers to the top-level package in a way the hook cannot rewrite."""


def rewrite_module(text: str, name: str, package: str = PACKAGE) -> str:
    """The generated module `name` (for messages) with every reference to the top-level
    generated package moved under `package`."""
    if _PLAIN_IMPORT.search(text):
        raise RewriteError(f"{name}: 'import {GENERATED_ROOT}...' is not a form this hook rewrites")
    text = _FROM_IMPORT.sub(lambda m: f"{m.group(1)}{package}.{GENERATED_ROOT}{m.group(2) or ''}{m.group(3)}", text)
    text = _MODULE_NAME.sub(lambda m: f"{m.group(1)}{package}.{GENERATED_ROOT}.", text)
    # A module path still starting at the top-level package was missed. (Wire names such as
    # 'files.v1.FilesService' are the proto package, not a module, and stay as they are.)
    for number, line in enumerate(text.splitlines(), 1):
        if _LEFTOVER.search(line.split("#", 1)[0]):
            raise RewriteError(f"{name}:{number}: unrewritten reference to the generated package: {line.strip()}")
    return text


def generated_files(gen_dir: str) -> dict[str, str]:
    """Every module and stub under gen_dir/files, by its path relative to gen_dir ('/'-separated)."""
    root = os.path.join(gen_dir, GENERATED_ROOT)
    if not os.path.isfile(os.path.join(root, "__init__.py")):
        raise FileNotFoundError(f"no generated Python package at {root}: run `npm run generate` in the repository")
    found: dict[str, str] = {}
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for file_name in sorted(names):
            if file_name.endswith((".py", ".pyi")):
                path = os.path.join(directory, file_name)
                found[os.path.relpath(path, gen_dir).replace(os.sep, "/")] = path
    return found


def write_package(gen_dir: str, out_dir: str, package: str = PACKAGE) -> dict[str, str]:
    """Writes the rewritten modules under out_dir; returns {written file: path inside the wheel}."""
    prefix = package.replace(".", "/")
    mapping: dict[str, str] = {}
    init = os.path.join(out_dir, "__init__.py")
    with open(init, "w", encoding="utf-8") as f:
        f.write('"""Code generated from proto/files/v1 by protoc; see s3files_client.pb for the public names."""\n')
    mapping[init] = f"{prefix}/__init__.py"
    for relative, source in generated_files(gen_dir).items():
        with open(source, encoding="utf-8") as f:
            text = f.read()
        module = relative.rsplit(".", 1)[0].replace("/", ".")
        target = os.path.join(out_dir, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(rewrite_module(text, module, package))
        mapping[target] = f"{prefix}/{relative}"
    return mapping


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported by the hook's own tests without hatchling
    BuildHookInterface = object  # type: ignore[assignment,misc]


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc,type-arg]
    """Adds the rewritten generated code to the wheel."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if version == "editable":
            raise RuntimeError("s3-files-service-client does not support editable installs: build and install the wheel")
        in_sdist = os.path.join(self.root, SDIST_GEN_DIR)
        gen_dir = in_sdist if os.path.isdir(in_sdist) else os.path.join(self.root, self.config.get("gen-dir", "../../gen/python"))
        self._out = tempfile.mkdtemp(prefix="s3files-client-gen-")
        build_data["force_include"].update(write_package(os.path.normpath(gen_dir), self._out))

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)

"""Fixtures for the tests of the installed s3-files-service-client wheel against live servers.

The servers are started, and these variables set, by the repository's
test/e2e/python-library.test.ts (`npx vitest run test/e2e/python-library.test.ts`), which also
builds the wheel and installs it into a fresh virtualenv. Without them, every test that needs a
server is skipped with a message saying so; the vitest test fails if anything was skipped.
"""

from __future__ import annotations

import os
from typing import Any
from collections.abc import Iterator

import pytest

import s3files_client
from support import VARIABLES, Servers

HOW_TO_RUN = (
    "needs the live servers of test/e2e/python-library.test.ts: run `npx vitest run test/e2e/python-library.test.ts` "
    "from the repository root (it builds the wheel, installs it into a fresh venv, starts the servers and sets {})"
)


@pytest.fixture(scope="session")
def servers() -> Servers:
    missing = [name for name in VARIABLES.values() if not os.environ.get(name)]
    if missing:
        pytest.skip(HOW_TO_RUN.format(", ".join(missing)))
    values: dict[str, Any] = {field: os.environ[name] for field, name in VARIABLES.items()}
    values["small_max_bytes"] = int(values["small_max_bytes"])
    values["small_max_upload_bytes"] = int(values["small_max_upload_bytes"])
    return Servers(**values)


@pytest.fixture
def client(servers: Servers) -> Iterator[s3files_client.Client]:
    with s3files_client.connect(servers.target) as c:
        yield c

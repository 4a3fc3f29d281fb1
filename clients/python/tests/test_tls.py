"""TLS: trusting the server's CA (and only it), with an API key or a client certificate whose CN
is the caller's principal on the server (mutual TLS)."""

from __future__ import annotations

import io
import time

import pytest

import s3files_client
from support import Servers, aclient, payload, run, sha256, unique_name

MiB = 1024 * 1024


def test_sync_round_trip_over_tls(servers: Servers) -> None:
    data = payload(2 * MiB + 1)
    with s3files_client.connect(servers.tls_target, servers.token, ca_file=servers.tls_ca) as client:
        file = client.upload(data, "assistants", filename=unique_name("tls"))
        buffer = io.BytesIO()
        client.download(file.id, buffer)
        assert sha256(buffer.getvalue()) == sha256(data) == file.sha256
        client.delete(file.id)


def test_aio_round_trip_over_tls_in_parts(servers: Servers) -> None:
    data = payload(11 * MiB)

    async def scenario() -> None:
        async with aclient(servers.tls_target, token=servers.token, ca_file=servers.tls_ca) as client:
            file = await client.upload(data, "assistants", filename=unique_name("aio-tls"), part_threshold=6 * MiB, part_size=5 * MiB)
            buffer = io.BytesIO()
            await client.download(file.id, buffer)
            assert sha256(buffer.getvalue()) == sha256(data) == file.sha256
            await client.delete(file.id)

    run(scenario())


def test_a_client_certificate_names_the_principal(servers: Servers) -> None:
    def with_certificate() -> s3files_client.Client:
        return s3files_client.connect(servers.tls_target, ca_file=servers.tls_ca, cert_file=servers.tls_cert, key_file=servers.tls_key)

    with with_certificate() as client:
        file = client.upload(b"owned by the certificate's CN\n", "assistants", filename=unique_name("mtls"))
        assert [f.id for f in client.list()] == [file.id]
    # With an API key instead, the caller is another principal, who does not see the file.
    with s3files_client.connect(servers.tls_target, servers.token, ca_file=servers.tls_ca) as other:
        assert file.id not in [f.id for f in other.list()]
        with pytest.raises(s3files_client.NotFoundError):
            other.get(file.id)
    # With neither, the server does not know who calls.
    with s3files_client.connect(servers.tls_target, ca_file=servers.tls_ca) as nobody:
        with pytest.raises(s3files_client.AuthenticationError, match="certificate"):
            nobody.get(file.id)
    with with_certificate() as client:
        client.delete(file.id)


def test_without_the_ca_the_certificate_is_refused_promptly(servers: Servers) -> None:
    started = time.monotonic()
    with s3files_client.connect(servers.tls_target, servers.token, tls=True, timeout=20) as client:
        with pytest.raises(s3files_client.UnavailableError):
            client.get("file-0123456789abcdef0123456789abcdef")
    assert time.monotonic() - started < 15


def test_plaintext_to_the_tls_port_says_tls_is_required(servers: Servers) -> None:
    with s3files_client.connect(servers.tls_target, timeout=20) as client:
        with pytest.raises(s3files_client.UnavailableError, match="TLS"):
            client.get("file-0123456789abcdef0123456789abcdef")

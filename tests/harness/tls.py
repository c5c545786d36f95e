"""Throwaway TLS for tests: a CA made on the spot with `cryptography`, server and client
certificates it signs (or lets expire), and nginx terminating TLS in front of the Temporal
dev server, which speaks only plaintext gRPC.

nginx (Debian's nginx-light: `.ci/run` installs it) stands where a secured cluster's
frontend or Temporal Cloud would: one port checks client certificates (mTLS), one checks an
API key in the `authorization` metadata, one presents an expired server certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from refundctl.procs import ChildProcess, free_ports, log_sink
from refundctl.ready import wait_for_port

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class Authority:
    """A certificate authority of the test's own, writing PEM files into `directory`."""

    def __init__(self, directory: Path, name: str = "kami test CA") -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = directory / f"{_slug(name)}.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool, expired: bool = False) -> Issued:
        """A leaf certificate: for localhost/127.0.0.1 (server) or a client named `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        valid_from, valid_to = (
            (now - dt.timedelta(days=3), now - dt.timedelta(days=1))
            if expired
            else (now - dt.timedelta(hours=1), now + dt.timedelta(days=7))
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from)
            .not_valid_after(valid_to)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        slug = _slug(name)
        cert_path, key_path = self.directory / f"{slug}.pem", self.directory / f"{slug}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_path, key_path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


@dataclass(frozen=True)
class TlsFrontends:
    """host:port of each nginx front of the dev server."""

    mtls: str  # client certificate signed by the CA required
    api_key: str  # `authorization: Bearer <api_key>` required
    expired: str  # serves an expired certificate
    api_key_value: str


def _nginx_conf(
    tmp: Path,
    *,
    upstream: str,
    ca: Authority,
    server: Issued,
    stale: Issued,
    ports: tuple[int, int, int],
    api_key: str,
) -> str:
    mtls, keyed, expired = ports
    temp = "\n".join(
        f"  {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    grpc = f"""
      grpc_pass grpc://{upstream};
      grpc_read_timeout 300s;
      grpc_send_timeout 300s;
      client_max_body_size 0;"""
    return f"""
daemon off;
master_process off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} info;
events {{ worker_connections 512; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{mtls} ssl http2;
    ssl_certificate {server.cert};
    ssl_certificate_key {server.key};
    ssl_client_certificate {ca.cert_path};
    ssl_verify_client on;
    location / {{{grpc}
    }}
  }}
  server {{
    listen 127.0.0.1:{keyed} ssl http2;
    ssl_certificate {server.cert};
    ssl_certificate_key {server.key};
    location / {{
      if ($http_authorization != "Bearer {api_key}") {{ return 401; }}{grpc}
    }}
  }}
  server {{
    listen 127.0.0.1:{expired} ssl http2;
    ssl_certificate {stale.cert};
    ssl_certificate_key {stale.key};
    location / {{{grpc}
    }}
  }}
}}
"""


@contextlib.asynccontextmanager
async def tls_frontends(
    tmp: Path, *, upstream: str, ca: Authority, api_key: str
) -> AsyncIterator[TlsFrontends]:
    """nginx in front of `upstream` (the dev server's host:port), until the block ends."""
    binary = nginx_binary()
    assert binary is not None, "nginx is not installed (apt-get install nginx-light)"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / kind).mkdir(exist_ok=True)
    mtls, api_key_port, expired = free_ports(3)
    ports = (mtls, api_key_port, expired)
    conf = tmp / "nginx.conf"
    conf.write_text(
        _nginx_conf(
            tmp,
            upstream=upstream,
            ca=ca,
            server=ca.issue("temporal frontend", server=True),
            stale=ca.issue("temporal frontend expired", server=True, expired=True),
            ports=ports,
            api_key=api_key,
        )
    )
    nginx = ChildProcess(
        "nginx",
        [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
        output=log_sink("nginx"),
        grace_seconds=5,
    )
    async with nginx:
        for port in ports:
            await wait_for_port("127.0.0.1", port, timeout_seconds=30, process=nginx)
        yield TlsFrontends(
            mtls=f"127.0.0.1:{ports[0]}",
            api_key=f"127.0.0.1:{ports[1]}",
            expired=f"127.0.0.1:{ports[2]}",
            api_key_value=api_key,
        )

"""TLS is verified unless the user says otherwise: a certificate for another name gets no request."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.test_cli import harness


def _certificate(tmp: Path, name: str, san: str) -> tuple[Path, Path]:
    """A self-signed certificate: with the `cryptography` package if installed, else `openssl`."""
    key, cert = tmp / f"{name}.key", tmp / f"{name}.pem"
    try:
        return _with_cryptography(key, cert, name, san)
    except ImportError:
        pass
    if shutil.which("openssl") is None:
        pytest.skip("no way to make a test certificate: neither the cryptography package nor openssl")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    f"/CN={name}", "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _with_cryptography(key: Path, cert: Path, name: str, san: str) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    kind, _, value = san.partition(":")
    alt = x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
    now = datetime.datetime.now(datetime.UTC)
    made = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(private, hashes.SHA256()))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert.write_bytes(made.public_bytes(serialization.Encoding.PEM))
    return cert, key


class _Refusing(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # every key refused: a request that got through shows as exit 2
        self.seen.append(self.headers.get("Authorization", ""))
        body = b'{"type":"about:blank","title":"Invalid API key","status":401,"detail":"no"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate for another name; and one that fits."""
    wrong, wrong_key = _certificate(tmp_path, "otherhost.invalid", "DNS:otherhost.invalid")
    right, right_key = _certificate(tmp_path, "loopback", "IP:127.0.0.1")
    servers = []
    urls = []
    for cert, key in ((wrong, wrong_key), (right, right_key)):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls.append(f"https://127.0.0.1:{server.server_address[1]}")
    _Refusing.seen = []
    try:
        yield urls[0], urls[1], right
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_a_certificate_for_another_name_gets_no_request(https_server: tuple[str, str, Path],
                                                        tmp_path: Path) -> None:
    wrong_url, _, _ = https_server
    result = harness("smoke", "--base-url", wrong_url, "--api-key", "inf_secret_key", cwd=tmp_path)
    assert result.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert _Refusing.seen == [], "the key reached a server whose certificate did not verify"
    assert "inf_secret_key" not in result.stdout + result.stderr


def test_insecure_and_a_ca_bundle_let_the_request_through(https_server: tuple[str, str, Path],
                                                          tmp_path: Path) -> None:
    wrong_url, right_url, right_cert = https_server
    insecure = harness("smoke", "--base-url", wrong_url, "--api-key", "k", "--insecure", cwd=tmp_path)
    assert insecure.returncode == 2 and "refused the API key" in insecure.stderr
    plain = harness("smoke", "--base-url", right_url, "--api-key", "k", cwd=tmp_path)
    assert plain.returncode == 3  # a private CA is not trusted by default
    trusted = harness("smoke", "--base-url", right_url, "--api-key", "k", "--ca-bundle", str(right_cert),
                      cwd=tmp_path)
    assert trusted.returncode == 2 and "refused the API key" in trusted.stderr
    assert len(_Refusing.seen) == 2


def test_insecure_and_ca_bundle_exclude_each_other(tmp_path: Path) -> None:
    result = harness("smoke", "--insecure", "--ca-bundle", str(tmp_path / "x.pem"), cwd=tmp_path)
    assert result.returncode == 2 and "not allowed with" in result.stderr
    missing = harness("smoke", "--base-url", "https://127.0.0.1:9", "--api-key", "k", "--ca-bundle",
                      str(tmp_path / "none.pem"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such CA bundle" in missing.stderr

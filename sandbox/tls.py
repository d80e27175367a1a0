"""Self-signed TLS material for the local stand-ins.

azure-identity and MSAL refuse plain-http authorities, so the identity stand-in serves https. We generate a
private CA and a server certificate for ``127.0.0.1``/``localhost`` signed by it (a real chain, so strict
verifiers accept it), and a *trust bundle* = that CA + the public roots from ``certifi``. Clients trust the
stand-ins by pointing ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` / ``connection_verify=`` / MSAL ``verify=`` at
the trust bundle; because it still holds the public roots, nothing else in the process stops working.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the generated PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    trust_bundle: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.trust_bundle))


def ensure_tls(directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> TlsMaterial:
    """Reuse the material in ``directory`` if complete, else generate it (stable paths across restarts)."""
    material = TlsMaterial(
        ca_file=directory / "sandbox-ca.pem",
        cert_file=directory / "sandbox-server.pem",
        key_file=directory / "sandbox-server-key.pem",
        trust_bundle=directory / "sandbox-trust-bundle.pem",
    )
    if all(p.exists() for p in (material.ca_file, material.cert_file, material.key_file, material.trust_bundle)):
        return material
    directory.mkdir(parents=True, exist_ok=True)
    _generate(material, hosts)
    return material


def _generate(material: TlsMaterial, hosts: tuple[str, ...]) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rufpool sandbox CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    material.ca_file.write_bytes(ca_pem)
    material.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    material.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    material.key_file.chmod(0o600)
    material.trust_bundle.write_bytes(ca_pem + Path(certifi.where()).read_bytes())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)

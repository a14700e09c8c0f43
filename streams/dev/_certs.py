"""The secure local stack's throwaway certificate authority and server certificate, as PEM files.

``ensure_certificates(folder)`` makes, once, under ``<home>/run/secure``:

- ``ca.pem`` (the CA certificate: what clients trust, ``KFLOW_KAFKA_CA_FILE`` / ``KFLOW_CASSANDRA_CA_FILE``) and
  ``ca-key.pem`` (its key, mode 0600, kept only to re-sign the server certificate when it nears its end);
- ``server.pem`` (the server certificate then the CA's: the chain) and ``server-key.pem`` (PKCS#8, unencrypted,
  mode 0600), plus ``server-keystore.pem`` (key + chain in one file, mode 0600: what Kafka's and Cassandra's PEM
  keystores read).

The server certificate names ``127.0.0.1`` and ``localhost`` (subject alternative names, so clients verify the
host name) and carries both ``serverAuth`` and ``clientAuth``: Kafka presents one keystore per listener in both
directions, and the KRaft nodes authenticate to each other's controller listener with it (mutual TLS). Keys are
ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS: Final = 3650
"""Validity of the throwaway CA."""
SERVER_DAYS: Final = 825
"""Validity of the server certificate (the longest TLS clients commonly accept)."""
RENEW_BEFORE_DAYS: Final = 30
"""A server certificate that ends within this many days (or names other hosts) is re-issued at the next start."""
SERVER_NAME: Final = "kflow-dev-server"
"""The server certificate's common name: the Kafka principal ``User:CN=kflow-dev-server`` of the KRaft nodes."""
HOSTS: Final = ("127.0.0.1", "localhost")
"""The names the server certificate is valid for."""
_BACKDATE: Final = dt.timedelta(minutes=5)  # a clock a little behind still accepts a fresh certificate


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where the PEM files of a secure stack are."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate (public: the trust anchor of every client)."""
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (mode 0600)."""
        return self.folder / "ca-key.pem"

    @property
    def server(self) -> Path:
        """The server certificate followed by the CA certificate."""
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        """The server's private key, PKCS#8 PEM (mode 0600)."""
        return self.folder / "server-key.pem"

    @property
    def keystore(self) -> Path:
        """Key then chain in one PEM file (mode 0600): ``ssl.keystore.location`` / Cassandra's ``keystore``."""
        return self.folder / "server-keystore.pem"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (created 0600, never world-readable on the way)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def ensure_certificates(folder: Path, now: dt.datetime | None = None) -> CertificateFiles:
    """The stack's certificates in ``folder``: made if missing, the server's re-issued when it nears its end.

    The CA is kept as long as its files exist, so clients that trust ``ca.pem`` keep trusting the stack.
    """
    files = CertificateFiles(folder)
    when = now or dt.datetime.now(dt.UTC)
    if not (files.ca.exists() and files.ca_key.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, when)
        write_private(files.ca_key, _key_pem(ca_key))
        files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        files.server.unlink(missing_ok=True)  # signed by the old CA, if any
    if not _server_current(files, when):
        ca_key_loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{files.ca_key} is not an EC key")
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(key, ca_key_loaded, ca_cert, when)
        chain = cert.public_bytes(serialization.Encoding.PEM) + files.ca.read_bytes()
        write_private(files.server_key, _key_pem(key))
        write_private(files.keystore, _key_pem(key) + chain)
        files.server.write_bytes(chain)
    return files


def _server_current(files: CertificateFiles, now: dt.datetime) -> bool:
    if not (files.server.exists() and files.server_key.exists() and files.keystore.exists()):
        return False
    cert = x509.load_pem_x509_certificate(files.server.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    hosts = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    hosts |= set(names.get_values_for_type(x509.DNSName))
    return hosts == set(HOSTS) and cert.not_valid_after_utc - now > dt.timedelta(days=RENEW_BEFORE_DAYS)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    subject = _name("kflow dev CA")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, now: dt.datetime
) -> x509.Certificate:
    alt_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(HOSTS[0])), x509.DNSName(HOSTS[1])]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(SERVER_NAME))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )

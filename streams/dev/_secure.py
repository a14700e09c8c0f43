"""The secrets of ``kflow dev up --secure``: generated passwords, the logins made of them, and the environment a
shell needs to use them.

Everything lives in ``<home>/run/secure`` (mode 0700; ``kflow dev down --wipe`` removes it with the data it
protects): the certificates (``_certs``), one password file per Kafka principal (``kafka-<role>.password``) and
Cassandra's ``cassandra-kflow.password``, each mode 0600. Passwords never go on a command line: the SCRAM users are
created at storage-format time from their salted form, through a Java argument file that is deleted afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from streams.dev._certs import CertificateFiles, ensure_certificates, write_private

ROLES: Final = ("admin", "client", "worker", "processor", "ops")
"""The Kafka principals of the secure stack (``User:<role>``); ``admin`` is the super user."""
ADMIN: Final = "admin"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
SCRAM_ITERATIONS: Final = 8192
CASSANDRA_USER: Final = "kflow"
"""The Cassandra role kflow logs in with (a superuser); the default ``cassandra`` role is disabled."""


@dataclass(frozen=True, slots=True)
class KafkaLogin:
    """SASL_SSL + SCRAM-SHA-512 as one principal, trusting ``ca_file``."""

    username: str
    password: str = field(repr=False)
    ca_file: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting only the stack's CA, checking the host name."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def options(self) -> dict[str, Any]:
        """The keyword arguments of an aiokafka producer, consumer or admin client."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
            "ssl_context": self.ssl_context(),
        }


@dataclass(frozen=True, slots=True)
class CassandraLogin:
    """Password authentication over TLS trusting ``ca_file``."""

    username: str
    password: str = field(repr=False)
    ca_file: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting only the stack's CA, checking the host name."""
        return ssl.create_default_context(cafile=str(self.ca_file))


@dataclass(frozen=True, slots=True)
class StackSecrets:
    """The secure stack's certificates and passwords under ``folder`` (``<home>/run/secure``)."""

    folder: Path

    @property
    def certificates(self) -> CertificateFiles:
        """The PEM files (made by :meth:`ensure`)."""
        return CertificateFiles(self.folder)

    def password_file(self, role: str) -> Path:
        """The file holding Kafka principal ``role``'s password, or (``"cassandra"``) the Cassandra role's."""
        if role == "cassandra":
            return self.folder / f"cassandra-{CASSANDRA_USER}.password"
        if role not in ROLES:
            raise ValueError(f"no Kafka role {role!r} (one of {', '.join(ROLES)})")
        return self.folder / f"kafka-{role}.password"

    def ensure(self) -> None:
        """Make the folder (0700), the certificates and every password that is missing; keep the others."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        ensure_certificates(self.folder)
        for role in (*ROLES, "cassandra"):
            path = self.password_file(role)
            if not path.exists():
                write_private(path, (secrets.token_urlsafe(24) + "\n").encode())

    def password(self, role: str) -> str:
        """The password of ``role`` (a Kafka role, or ``"cassandra"``)."""
        return self.password_file(role).read_text().strip()

    def kafka(self, role: str = ADMIN) -> KafkaLogin:
        """Kafka principal ``role``'s login."""
        return KafkaLogin(role, self.password(role), self.certificates.ca)

    def cassandra(self) -> CassandraLogin:
        """The ``kflow`` Cassandra role's login."""
        return CassandraLogin(CASSANDRA_USER, self.password("cassandra"), self.certificates.ca)

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating every role's SCRAM credential (salted: no password)."""
        out = []
        for role in ROLES:
            salt = secrets.token_bytes(32)
            out += ["--add-scram", scram_argument(role, self.password(role), salt)]
        return out


def scram_argument(name: str, password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """``SCRAM-SHA-512=[name=…,salt=…,saltedpassword=…,iterations=…]`` for ``kafka-storage format --add-scram``.

    The salted password is SCRAM's ``Hi(password, salt, i)`` (RFC 5802), PBKDF2-HMAC-SHA-512, as Kafka's
    ``ScramFormatter.saltedPassword`` computes it; salt and salted password are base64.
    """
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return (
        f"{SCRAM_MECHANISM}=[name={name},salt={b64(salt).decode()},"
        f"saltedpassword={b64(salted).decode()},iterations={iterations}]"
    )


def environment(bootstrap: str, cassandra: str | None, stack: StackSecrets | None, role: str = ADMIN) -> dict[str, str]:
    """The ``KFLOW_*`` variables for a shell using the stack as ``role``; password values are shell command
    substitutions reading the password files (``$(cat …)``), so the secrets themselves are never printed."""
    env = {"KFLOW_BOOTSTRAP": bootstrap}
    if cassandra is not None:
        env["KFLOW_CASSANDRA"] = cassandra
    if stack is None:
        return env
    ca = str(stack.certificates.ca)
    env |= {
        "KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KFLOW_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KFLOW_KAFKA_USERNAME": role,
        "KFLOW_KAFKA_PASSWORD": _read_command(stack.password_file(role)),
        "KFLOW_KAFKA_CA_FILE": ca,
    }
    if cassandra is not None:
        env |= {
            "KFLOW_CASSANDRA_USERNAME": CASSANDRA_USER,
            "KFLOW_CASSANDRA_PASSWORD": _read_command(stack.password_file("cassandra")),
            "KFLOW_CASSANDRA_CA_FILE": ca,
        }
    return env


def _read_command(path: Path) -> str:
    return f"$(cat {shlex.quote(str(path))})"


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines for ``env`` (command substitutions in double quotes, other values quoted)."""
    lines = []
    for name, value in env.items():
        quoted = f'"{value}"' if value.startswith("$(") else shlex.quote(value)
        lines.append(f"export {name}={quoted}")
    return lines


def resolved(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with every ``$(cat FILE)`` replaced by the file's content (for a process started from Python)."""
    out = {}
    for name, value in env.items():
        if value.startswith("$(cat ") and value.endswith(")"):
            (path,) = shlex.split(value[len("$(cat ") : -1])
            value = Path(path).read_text().strip()
        out[name] = value
    return out


def java_argfile(path: Path, arguments: list[str]) -> Path:
    """Write ``arguments`` (the main class and its arguments) as a Java ``@argfile`` readable by its owner only,
    so they stay off every command line; returns ``path``."""
    quoted = ['"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"' for arg in arguments]
    write_private(path, ("\n".join(quoted) + "\n").encode())
    return path

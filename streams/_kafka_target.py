"""Where the Kafka brokers are and how kflow connects to them: a ``KafkaTarget`` (bootstrap servers, TLS, SASL),
built from the ``KFLOW_KAFKA_*`` settings by ``Settings.kafka_target()``, and turned into the keyword arguments of
every aiokafka client kflow makes (``streams.kafka``).

A plain string is a target too: ``KafkaTarget.of("host:9092")`` is those bootstrap servers over PLAINTEXT.
Passwords are ``pydantic.SecretStr``: ``repr`` and ``str`` of a target show ``**********``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from streams._errors import TransportError

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""The ``security.protocol`` values kflow accepts (Kafka's names)."""

SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""The SASL mechanisms kflow accepts; PLAIN when a SASL protocol names none."""

ATTRIBUTES: Final = {
    "security_protocol": "security_protocol",
    "sasl_mechanism": "sasl_mechanism",
    "username": "username",
    "password": "password",
    "ca_file": "ca_file",
    "cert_file": "cert_file",
    "key_file": "key_file",
    "key_password": "key_password",
}
"""What ``security_problem`` calls each attribute by default: its own name (``Settings`` passes the variables)."""


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    """The Kafka cluster kflow talks to, and how.

    Attributes:
        bootstrap: bootstrap servers, ``host:port`` separated by commas.
        security_protocol: one of ``SECURITY_PROTOCOLS``: SSL and SASL_SSL encrypt (TLS), SASL_PLAINTEXT and
            SASL_SSL authenticate with ``username`` / ``password``.
        sasl_mechanism: one of ``SASL_MECHANISMS`` (None: PLAIN) with a SASL protocol, else None.
        username / password: the SASL credentials (both, with a SASL protocol only).
        ca_file: PEM file of the certificate authorities that signed the brokers' certificates (None: the
            system's); TLS protocols only.
        cert_file / key_file / key_password: the client certificate chain, its private key (None: in
            ``cert_file``) and the key's password, for brokers that authenticate clients by certificate (mTLS).
        check_hostname: whether a broker's certificate must name the host connected to (the chain is checked
            either way).

    Raises:
        ValueError: an unknown protocol or mechanism, or settings the protocol does not use (``security_problem``).
    """

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        problem = security_problem({name: getattr(self, name) for name in ATTRIBUTES})
        if problem is not None:
            raise ValueError(problem)

    @classmethod
    def of(cls, target: KafkaTarget | str) -> KafkaTarget:
        """``target`` itself, or (a string) those bootstrap servers over PLAINTEXT."""
        return target if isinstance(target, KafkaTarget) else cls(target)

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted (SSL, SASL_SSL)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        """Whether connections authenticate with a username and password (SASL_PLAINTEXT, SASL_SSL)."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a connection (None without TLS): ``ca_file`` (else the system's authorities), the
        client certificate if any, hostname checks as ``check_hostname`` says.

        Raises:
            TransportError: a file cannot be read or is not what it should be (one line naming the file).
        """
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        except (OSError, ValueError) as exc:
            raise self._unusable("the CA file", self.ca_file, exc) from exc
        context.check_hostname = self.check_hostname
        if self.cert_file is not None:
            password = self.key_password.get_secret_value() if self.key_password else None
            try:
                context.load_cert_chain(self.cert_file, self.key_file, password)
            except (OSError, ValueError) as exc:
                files = f"{self.cert_file}" + (f" and {self.key_file}" if self.key_file else "")
                raise self._unusable("the client certificate and key", files, exc) from exc
        return context

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of an aiokafka client (producer, consumer, admin) for this target.

        Raises:
            TransportError: a TLS file cannot be used (``ssl_context``).
        """
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value() if self.password else None
        return options

    def _unusable(self, what: str, path: object, exc: BaseException) -> TransportError:
        detail = " ".join((str(exc) or type(exc).__name__).split())
        message = f"Kafka at {self.bootstrap}: cannot use {what} ({path}): {type(exc).__name__}: {detail}"
        return TransportError(message, self.bootstrap, "loading the TLS files")


def security_problem(values: Mapping[str, object], names: Mapping[str, str] = ATTRIBUTES) -> str | None:
    """What is wrong with the security settings ``values`` (attribute name of ``ATTRIBUTES`` → value), as one line
    naming each setting by ``names`` (attribute name → what to call it), or None when they fit together."""
    protocol, mechanism = values["security_protocol"], values["sasl_mechanism"]
    sasl, tls = protocol in ("SASL_PLAINTEXT", "SASL_SSL"), protocol in ("SSL", "SASL_SSL")
    if protocol not in SECURITY_PROTOCOLS:
        return f"{names['security_protocol']} must be one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}"
    if mechanism is not None and mechanism not in SASL_MECHANISMS:
        return f"{names['sasl_mechanism']} must be one of {', '.join(SASL_MECHANISMS)}, got {mechanism!r}"
    used_by_sasl = ("sasl_mechanism", "username", "password")
    used_by_tls = ("ca_file", "cert_file", "key_file", "key_password")
    if not sasl and (unused := [n for n in used_by_sasl if values[n] is not None]):
        return f"{_set(names, unused)}, but {names['security_protocol']} is {protocol} (SASL_* protocols use it)"
    if not tls and (unused := [n for n in used_by_tls if values[n] is not None]):
        return f"{_set(names, unused)}, but {names['security_protocol']} is {protocol} (SSL and SASL_SSL use it)"
    if sasl and (missing := [n for n in ("username", "password") if values[n] is None]):
        return f"{names['security_protocol']}={protocol} needs {_and(names, missing)}"
    if values["cert_file"] is None and (orphans := [n for n in ("key_file", "key_password") if values[n] is not None]):
        return f"{_set(names, orphans)} without {names['cert_file']} (the client certificate)"
    return None


def _and(names: Mapping[str, str], attributes: list[str]) -> str:
    words = [names[a] for a in attributes]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _set(names: Mapping[str, str], attributes: list[str]) -> str:
    return f"{_and(names, attributes)} {'is' if len(attributes) == 1 else 'are'} set"

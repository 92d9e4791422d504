"""How Rapport's Kafka clients authenticate and encrypt: TLS and SASL for a managed Kafka.

Every Kafka client of every process (the ingest's producer, the workers' Faust consumers and
producers, the report store's and live dashboard's consumers, readiness probes, the feeder and
topic administration) is built with the same :class:`KafkaSecurity`, read once per process from
the environment by services/settings.py (``RAPPORT_KAFKA_*``, docs/configuration.md):

- ``security_protocol``: ``PLAINTEXT`` (the default; the embedded broker and `rapport kafka`),
  ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL`` — Kafka's own names (``security.protocol``);
- ``sasl_mechanism``: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` with ``username`` and
  ``password`` (the SASL protocols need all three);
- ``ca_file`` (PEM; default: the system's trust store), ``cert_file`` and ``key_file`` (PEM, for
  brokers that authenticate clients by certificate) for the TLS protocols.

The values go to aiokafka's public constructor arguments (:meth:`client_kwargs`) and to Faust's
``broker_credentials`` (:meth:`faust_credentials`), which hands the same arguments to aiokafka.
The password is never part of ``repr`` and never logged.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from models.errors import ConfigError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)
_TLS = frozenset({"SSL", "SASL_SSL"})
_SASL = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})

# The environment variable of each field: errors name what the user set.
ENV = {
    "security_protocol": "RAPPORT_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "RAPPORT_KAFKA_SASL_MECHANISM",
    "username": "RAPPORT_KAFKA_SASL_USERNAME",
    "password": "RAPPORT_KAFKA_SASL_PASSWORD",
    "ca_file": "RAPPORT_KAFKA_SSL_CAFILE",
    "cert_file": "RAPPORT_KAFKA_SSL_CERTFILE",
    "key_file": "RAPPORT_KAFKA_SSL_KEYFILE",
}


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The TLS and SASL settings of one process's Kafka clients (see the module docstring)."""

    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        protocol = self.security_protocol
        if protocol not in PROTOCOLS:
            raise ConfigError(ENV["security_protocol"],
                              f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if protocol in _SASL:
            if self.sasl_mechanism not in MECHANISMS:
                raise ConfigError(ENV["sasl_mechanism"],
                                  f"must be one of {', '.join(MECHANISMS)} with {protocol}, "
                                  f"got {self.sasl_mechanism!r}")
            for name in ("username", "password"):
                if not getattr(self, name):
                    raise ConfigError(ENV[name], f"is required with {protocol}")
        elif self.sasl_mechanism or self.username or self.password:
            raise ConfigError(ENV["security_protocol"],
                              f"SASL settings are set but the protocol is {protocol}; use "
                              "SASL_PLAINTEXT or SASL_SSL")
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file,
                 "key_file": self.key_file}
        if protocol not in _TLS and any(files.values()):
            raise ConfigError(ENV["security_protocol"],
                              f"TLS files are set but the protocol is {protocol}; use SSL or "
                              "SASL_SSL")
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError(ENV["cert_file"] if not self.cert_file else ENV["key_file"],
                              "a client certificate needs both the certificate and its key")
        for name, path in files.items():
            if path and not Path(path).is_file():
                raise ConfigError(ENV[name], f"no such file: {path}")

    @classmethod
    def from_env(cls, env: dict[str, str]) -> KafkaSecurity:
        """The settings in ``env`` (empty values count as unset); raises ConfigError naming
        the variable that is wrong."""
        values = {name: (env.get(var) or "").strip() or None for name, var in ENV.items()}
        protocol = (values.pop("security_protocol") or "PLAINTEXT").upper()
        mechanism = values.pop("sasl_mechanism")
        return cls(security_protocol=protocol,  # type: ignore[arg-type]  # checked in init
                   sasl_mechanism=mechanism.upper() if mechanism else None,  # type: ignore[arg-type]
                   **values)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in _TLS

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context verifying the broker (hostname included) against ``ca_file``
        or the system's trust store; None for the plaintext protocols."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (producer, consumer, admin, client)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security_protocol in _SASL:
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` (None for PLAINTEXT): SASL with the TLS context of
        SASL_SSL, or TLS alone."""
        import faust  # here, so that the ingest and report services need no Faust import

        if self.security_protocol in _SASL:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.sasl_mechanism,
                                         ssl_context=self.ssl_context())
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return None

    def librdkafka_config(self) -> dict[str, str]:
        """The same settings for librdkafka clients (confluent-kafka's admin client)."""
        config = {"security.protocol": self.security_protocol.lower()}
        if self.security_protocol in _SASL:
            config.update({"sasl.mechanism": str(self.sasl_mechanism),
                           "sasl.username": str(self.username),
                           "sasl.password": str(self.password)})
        for key, path in (("ssl.ca.location", self.ca_file),
                          ("ssl.certificate.location", self.cert_file),
                          ("ssl.key.location", self.key_file)):
            if self.uses_tls and path:
                config[key] = path
        return config

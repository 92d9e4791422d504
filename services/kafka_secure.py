"""A local Kafka cluster that clients reach only over TLS with a SASL password
(``rapport kafka --secure``), as a managed Kafka is reached: to try and test Rapport's
``RAPPORT_KAFKA_*`` settings (streams/kafka_security.py) without a cloud account.

Each node gets a second listener, ``CLIENT``, speaking ``SASL_SSL`` with the ``PLAIN``
mechanism; the brokers talk to each other and to the controllers over the loopback
``PLAINTEXT`` listener as before. The files live in ``<data>/tls``, made once and kept:

- ``ca.pem``: a self-signed certificate authority (10 years), the clients' trust anchor;
- ``broker.pem``: the brokers' key (unencrypted PKCS#8) and certificate for
  ``localhost``/``127.0.0.1``, signed by that authority, which Kafka reads as a PEM keystore;
- ``client.env``: the ``RAPPORT_KAFKA_*`` lines a Rapport process needs (user ``rapport``
  and a random password), which ``rapport kafka --secure`` also prints.

The key files are created mode 0600. Development and tests only: the authority's key is kept
next to the certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streams.kafka_security import ENV, KafkaSecurity, Mechanism

USERNAME = "rapport"
MECHANISM: Mechanism = "PLAIN"
_VALID = datetime.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class SecureCluster:
    """The TLS files and the SASL user of a ``--secure`` cluster."""

    directory: Path
    password: str = field(repr=False)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.pem"

    def client_security(self) -> KafkaSecurity:
        return KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism=MECHANISM,
                             username=USERNAME, password=self.password,
                             ca_file=str(self.ca_file))

    def environment(self) -> dict[str, str]:
        """``RAPPORT_KAFKA_*`` variables for Rapport's processes."""
        return {ENV["security_protocol"]: "SASL_SSL", ENV["sasl_mechanism"]: MECHANISM,
                ENV["username"]: USERNAME, ENV["password"]: self.password,
                ENV["ca_file"]: str(self.ca_file)}

    def listener_properties(self) -> dict[str, str]:
        """server.properties entries of the ``CLIENT`` listener (listener-scoped, so the
        PLAINTEXT listeners between nodes are unchanged)."""
        jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
                f'user_{USERNAME}="{self.password}";')
        return {
            "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
            "listener.name.client.plain.sasl.jaas.config": jaas,
            "listener.name.client.ssl.keystore.type": "PEM",
            "listener.name.client.ssl.keystore.location": str(self.keystore),
        }


def prepare(data: Path) -> SecureCluster:
    """The cluster's TLS files and password under ``data/tls``, made on first use."""
    directory = data / "tls"
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "password"
    if not (secret.exists() and (directory / "broker.pem").exists()
            and (directory / "ca.pem").exists()):
        _write_private(secret, secrets.token_urlsafe(24).encode())
        _make_certificates(directory)
    cluster = SecureCluster(directory, secret.read_text().strip())
    lines = "".join(f"{k}={v}\n" for k, v in cluster.environment().items())
    _write_private(directory / "client.env", lines.encode())
    return cluster


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _make_certificates(directory: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Rapport development CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALID)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    broker = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_name)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + _VALID)
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    _write_private(directory / "ca-key.pem", ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    # Kafka's PEM keystore: the unencrypted PKCS#8 key, then the certificate chain.
    _write_private(directory / "broker.pem", key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + broker.public_bytes(pem) + ca.public_bytes(pem))

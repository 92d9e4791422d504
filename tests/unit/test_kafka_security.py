"""TLS and SASL settings of the Kafka clients (streams/kafka_security.py): what a user sets
in RAPPORT_KAFKA_* reaches aiokafka, Faust and librdkafka alike, and a wrong combination is
refused naming the variable before any connection is tried."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from models.errors import ConfigError
from services.settings import load_settings
from streams.kafka_security import KafkaSecurity

SASL = {"RAPPORT_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "RAPPORT_KAFKA_SASL_MECHANISM":
        "scram-sha-512", "RAPPORT_KAFKA_SASL_USERNAME": "svc",
        "RAPPORT_KAFKA_SASL_PASSWORD": "s3cret"}


def test_the_default_is_plaintext_everywhere() -> None:
    security = load_settings(env={}).kafka
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.librdkafka_config() == {"security.protocol": "plaintext"}
    assert security.faust_credentials() is None


def test_sasl_over_tls_reaches_every_client_kind() -> None:
    security = load_settings(env=SASL).kafka
    kwargs = security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"],
            kwargs["sasl_plain_password"]) == ("SCRAM-SHA-512", "svc", "s3cret")
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert security.librdkafka_config() == {
        "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": "s3cret"}
    credentials = security.faust_credentials()
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in repr(security)


@pytest.mark.parametrize("env, variable", [
    ({"RAPPORT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
    ({**SASL, "RAPPORT_KAFKA_SASL_MECHANISM": "GSSAPI"}, "RAPPORT_KAFKA_SASL_MECHANISM"),
    ({**SASL, "RAPPORT_KAFKA_SASL_PASSWORD": ""}, "RAPPORT_KAFKA_SASL_PASSWORD"),
    ({"RAPPORT_KAFKA_SASL_USERNAME": "svc"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
    ({"RAPPORT_KAFKA_SSL_CAFILE": "/etc/hostname"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
    ({**SASL, "RAPPORT_KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "RAPPORT_KAFKA_SSL_CAFILE"),
    ({**SASL, "RAPPORT_KAFKA_SSL_CERTFILE": "/etc/hostname"}, "RAPPORT_KAFKA_SSL_KEYFILE"),
])
def test_a_wrong_combination_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env=env)
    assert raised.value.field == variable


def test_tls_files_reach_librdkafka_and_the_context(tmp_path: Path) -> None:
    from services.kafka_secure import prepare

    cluster = prepare(tmp_path)
    security = KafkaSecurity("SSL", ca_file=str(cluster.ca_file))
    assert security.librdkafka_config() == {"security.protocol": "ssl",
                                            "ssl.ca.location": str(cluster.ca_file)}
    context = security.ssl_context()
    assert context is not None and context.cert_store_stats()["x509_ca"] == 1
    # The files a --secure cluster keeps: keys private, the same password on a second start.
    assert (tmp_path / "tls" / "broker.pem").stat().st_mode & 0o777 == 0o600
    assert prepare(tmp_path).password == cluster.password

"""Topics on a real Kafka cluster: wait until it answers, create Rapport's topics if absent.

Used by ``rapport kafka`` (a local KRaft cluster it starts) and ``rapport run --broker``
(a cluster someone else runs). Synchronous on purpose: both call it before any event loop
runs, and confluent-kafka's admin client (librdkafka, from the wheel the embedded broker
already needs) reports per-topic outcomes, replication factor and topic configs included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from models.errors import RapportError
from models.topics import DEFAULT_APP_ID, Topics, TopicSpec, changelog_topic
from streams.broker_probe import bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
ATTEMPT_S = 1.0  # one metadata request's wait while checking that the cluster answers
# librdkafka's connection errors that settings cause and a retry cannot mend: a SASL
# password or mechanism the broker refuses, a TLS handshake that fails (an untrusted
# certificate). Seen, they end the wait for the cluster at once.
DEFINITIVE = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
# Kafka's own "the cluster's default.replication.factor" (KIP-464).
CLUSTER_DEFAULT_REPLICATION = -1


class KafkaAdminError(RapportError):
    """The cluster did not answer in time, or a topic could not be created as asked."""


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """A topic to create: its spec, the replication factor (``-1``: the cluster's default)
    and topic configs such as ``min.insync.replicas``."""

    spec: TopicSpec
    replication: int = CLUSTER_DEFAULT_REPLICATION
    config: dict[str, str] = field(default_factory=dict)


def rapport_topics(partitions: int, replication: int = CLUSTER_DEFAULT_REPLICATION,
                   min_insync: int | None = None, topics: Topics | None = None,
                   app_id: str = DEFAULT_APP_ID) -> list[TopicPlan]:
    """Every topic of a worker group (models/topics.py), all with ``partitions``. The
    sessions table's changelog is compacted: the latest state per session is all a worker
    restores; the other topics keep the cluster's retention."""
    changelog = changelog_topic(app_id)
    plans = []
    for spec in (topics or Topics()).specs(partitions, app_id):
        config = {} if min_insync is None else {"min.insync.replicas": str(min_insync)}
        if spec.name == changelog:
            config["cleanup.policy"] = "compact"
        plans.append(TopicPlan(spec, replication, config))
    return plans


def admin_client(broker: str, security: KafkaSecurity | None = None,
                 errors: list[KafkaError] | None = None) -> Any:
    """An admin client for any broker address form (``kafka://h:p``, ``h:p,h2:p``);
    ``errors`` collects the client's connection errors (a refused password, a certificate
    not trusted), which its requests' own errors do not name."""
    extra: dict[str, Any] = {}
    if errors is not None:
        extra["error_cb"] = errors.append
    return AdminClient({"bootstrap.servers": bootstrap_servers(broker),
                        **(security or KafkaSecurity()).librdkafka_config(), **extra,
                        "socket.connection.setup.timeout.ms": 3000,
                        # Its connection retries are not the user's news: failures reach
                        # the caller as exceptions or timeouts.
                        "log_level": 0})


def wait_for_brokers(broker: str, count: int, timeout_s: float,
                     alive: Callable[[], str | None] = lambda: None,
                     security: KafkaSecurity | None = None) -> list[int]:
    """Poll the cluster's metadata until ``count`` brokers are registered; returns their
    ids. ``alive`` returns a reason to give up early (a broker process exited)."""
    client = admin_client(broker, security)
    deadline = time.monotonic() + timeout_s
    seen: list[int] = []
    while True:
        problem = alive()
        if problem:
            raise KafkaAdminError(problem)
        try:
            metadata = client.list_topics(timeout=1.0)
            seen = sorted(metadata.brokers)
            if len(seen) >= count:
                return seen
        except KafkaException:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise KafkaAdminError(
                f"Kafka at {bootstrap_servers(broker)} did not answer with {count} broker(s) "
                f"within {timeout_s:.0f} s (saw {seen or 'none'})")
        time.sleep(0.2)


def existing_partitions(broker: str, timeout_s: float = REQUEST_TIMEOUT_S,
                        security: KafkaSecurity | None = None) -> dict[str, int]:
    """Topic name -> partition count, for every topic on the cluster."""
    errors: list[KafkaError] = []
    client = admin_client(broker, security, errors)
    deadline = time.monotonic() + timeout_s
    while True:
        # In slices, so that a refused password or an untrusted certificate ends the wait
        # within about a second: neither mends itself, where a broker still starting (a
        # refused or dropped connection) may answer before the deadline.
        try:
            metadata = client.list_topics(timeout=min(ATTEMPT_S, timeout_s))
            break
        except KafkaException as error:
            client.poll(0.2)  # serves error_cb: the connection errors that say why
            if time.monotonic() >= deadline or any(e.code() in DEFINITIVE for e in errors):
                raise KafkaAdminError(_unreachable(broker, error, errors, security)) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _unreachable(broker: str, error: KafkaException, errors: list[KafkaError],
                 security: KafkaSecurity | None) -> str:
    said = [str(e.str()) for e in errors]
    cause = next((e.split(": ", 1)[-1] for e in said
                  if any(word in e for word in ("SASL", "SSL", "certificate", "handshake"))),
                 None)
    message = f"cannot reach Kafka at {bootstrap_servers(broker)}: {cause or error.args[0]}"
    protocol = (security or KafkaSecurity()).security_protocol
    return message + (f" (security protocol {protocol}; a cluster that needs TLS or SASL "
                      "takes the RAPPORT_KAFKA_* settings, docs/configuration.md)")


def ensure_topics(broker: str, plans: Sequence[TopicPlan],
                  timeout_s: float = REQUEST_TIMEOUT_S,
                  security: KafkaSecurity | None = None) -> list[str]:
    """Create each planned topic that does not exist; returns the names created. A topic
    that exists with another partition count is an error: Rapport keys every topic by
    session and needs them co-partitioned (models/topics.py), and Faust refuses a
    changelog whose partition count differs from its source topic's."""
    present = existing_partitions(broker, timeout_s, security)
    mismatched = [f"{plan.spec.name} has {present[plan.spec.name]} partition(s), not "
                  f"{plan.spec.partitions}" for plan in plans
                  if plan.spec.name in present
                  and present[plan.spec.name] != plan.spec.partitions]
    if mismatched:
        raise KafkaAdminError("existing topics differ from --partitions: "
                              + "; ".join(mismatched))
    missing = [plan for plan in plans if plan.spec.name not in present]
    if not missing:
        return []
    created = _create(broker, missing, timeout_s, security)
    wait_for_topics(broker, {plan.spec.name: plan.spec.partitions for plan in plans},
                    timeout_s, security)
    return created


def _create(broker: str, missing: Sequence[TopicPlan], timeout_s: float,
            security: KafkaSecurity | None) -> list[str]:
    # Kept referenced: its futures fail once it is collected.
    client = admin_client(broker, security)
    futures = client.create_topics(
        [NewTopic(plan.spec.name, plan.spec.partitions, plan.replication, config=plan.config)
         for plan in missing], operation_timeout=timeout_s, request_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s + 5)
        except KafkaException as error:
            cause = error.args[0]
            if isinstance(cause, KafkaError) and cause.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created meanwhile by a worker
            raise KafkaAdminError(f"cannot create topic {name}: {cause}") from None
        created.append(name)
        log.info("topic %s created", name)
    return sorted(created)


def wait_for_topics(broker: str, partitions: dict[str, int], timeout_s: float,
                    security: KafkaSecurity | None = None) -> None:
    """Until every broker of the cluster, asked on its own, lists each topic with its
    partitions and their leaders. Creation returns once the controller has the topic; each
    broker learns it a moment later, and a worker whose group forms in that moment is
    assigned none of the topic's partitions (Faust's assignor skips a topic missing from its
    metadata, and the group does not rebalance when the topic appears)."""
    deadline = time.monotonic() + timeout_s
    try:
        metadata = admin_client(broker, security).list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise KafkaAdminError(f"cannot reach Kafka at {bootstrap_servers(broker)}: "
                              f"{error.args[0]}") from None
    pending = {f"{b.host}:{b.port}" for b in metadata.brokers.values()}
    while pending:
        for address in sorted(pending):
            if _lists(address, partitions, security):
                pending.discard(address)
        if pending and time.monotonic() > deadline:
            raise KafkaAdminError(f"brokers {', '.join(sorted(pending))} do not list the "
                                  f"topics after {timeout_s:.0f} s")
        if pending:
            time.sleep(0.1)


def _lists(address: str, partitions: dict[str, int],
           security: KafkaSecurity | None = None) -> bool:
    """Whether the broker at ``address`` lists every topic with all partitions led. A new
    client each time: its first request goes to its only known broker, this one."""
    try:
        topics = admin_client(address, security).list_topics(timeout=2.0).topics
    except KafkaException:
        return False
    for name, count in partitions.items():
        topic = topics.get(name)
        if topic is None or topic.error is not None or len(topic.partitions) != count:
            return False
        if any(p.leader < 0 for p in topic.partitions.values()):
            return False
    return True

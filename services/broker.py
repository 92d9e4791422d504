"""The embedded Kafka-protocol broker: librdkafka's mock cluster, from the confluent-kafka wheel.

Machines without Kafka (a laptop, CI) still run Rapport on real Kafka semantics: the mock
cluster speaks the Kafka protocol (produce, fetch, consumer groups, offset commits) to any
client, aiokafka and Faust included. It is loaded with ctypes because confluent-kafka's Python
API does not expose it. Limits to know (documented for users): it keeps only about 5 MiB or
100k message batches per partition and silently drops older data, so it is for one machine,
not for retention; and it auto-creates unknown topics with 4 partitions, so every topic is
created up front with its real partition count.
"""

from __future__ import annotations

import asyncio
import ctypes
import glob
import logging
import os
from dataclasses import dataclass
from types import TracebackType

from aiokafka.client import AIOKafkaClient

from models.errors import RapportError

log = logging.getLogger(__name__)

RUNTIME_FILE = "embedded-broker"

_RD_KAFKA_PRODUCER = 0
_CONF_OK = 0


class BrokerError(RapportError):
    """The embedded broker could not be started or configured."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1


def _find_librdkafka() -> str:
    import confluent_kafka

    package = os.path.dirname(confluent_kafka.__file__)
    candidates = sorted(glob.glob(os.path.join(package + ".libs", "librdkafka*.so*")))
    candidates += sorted(glob.glob(os.path.join(package, ".dylibs", "librdkafka*.dylib")))
    if not candidates:
        raise BrokerError("librdkafka from the confluent-kafka wheel not found; reinstall it")
    return candidates[0]


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(_find_librdkafka())
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_conf_set.restype = ctypes.c_int
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                               ctypes.c_int]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_down.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.restype = ctypes.c_int
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]
    lib.rd_kafka_err2str.restype = ctypes.c_char_p
    return lib


class EmbeddedBroker:
    """A running mock cluster. Use as a context manager, or ``start()`` / ``close()``.

    ``bootstrap`` is ``host:port,...`` for Kafka clients (prefix ``kafka://`` for Faust).
    """

    def __init__(self, brokers: int = 1) -> None:
        if brokers < 1:
            raise BrokerError("brokers must be >= 1")
        self._brokers = brokers
        self._lib: ctypes.CDLL | None = None
        self._handle: int | None = None
        self._cluster: int | None = None
        self.bootstrap = ""

    def start(self) -> str:
        lib = self._lib = _load()
        conf = lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        # The handle only hosts the cluster: keep it quiet and idle.
        for name, value in ((b"log_level", b"3"),):
            if lib.rd_kafka_conf_set(conf, name, value, errstr, len(errstr)) != _CONF_OK:
                raise BrokerError(f"librdkafka config {name.decode()}: {errstr.value.decode()}")
        handle = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not handle:
            raise BrokerError(f"cannot create librdkafka handle: {errstr.value.decode()}")
        self._handle = handle
        cluster = lib.rd_kafka_mock_cluster_new(handle, self._brokers)
        if not cluster:
            self.close()
            raise BrokerError("cannot create the mock cluster")
        self._cluster = cluster
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
        log.info("embedded broker up at %s (%d broker(s))", self.bootstrap, self._brokers)
        return self.bootstrap

    def create_topics(self, topics: list[TopicSpec]) -> None:
        """Create topics with their partition counts (before any client can auto-create them
        with the mock cluster's default of 4)."""
        if self._lib is None or self._cluster is None:
            raise BrokerError("broker not started")
        for topic in topics:
            err = self._lib.rd_kafka_mock_topic_create(
                self._cluster, topic.name.encode(), topic.partitions, topic.replication
            )
            if err:
                reason = self._lib.rd_kafka_err2str(err).decode()
                raise BrokerError(f"cannot create topic {topic.name}: {reason}")
            log.info("topic %s: %d partition(s)", topic.name, topic.partitions)

    def set_down(self, down: bool = True) -> None:
        """Take every mock broker down (connections closed, new ones refused) or back up, on
        the same address: an outage for tests of readiness and recovery."""
        if self._lib is None or self._cluster is None:
            raise BrokerError("broker not started")
        switch = self._lib.rd_kafka_mock_broker_set_down if down else \
            self._lib.rd_kafka_mock_broker_set_up
        for broker_id in range(1, self._brokers + 1):
            if switch(self._cluster, broker_id):
                raise BrokerError(f"cannot take broker {broker_id} {'down' if down else 'up'}")

    def close(self) -> None:
        if self._lib is None:
            return
        if self._cluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle is not None:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None
        self.bootstrap = ""

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def runtime_dir() -> str:
    """Where a running embedded broker leaves its address for other ``rapport`` commands:
    ``$RAPPORT_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/rapport``, else ``/tmp/rapport-$UID``."""
    explicit = os.environ.get("RAPPORT_RUNTIME_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "rapport") if xdg else f"/tmp/rapport-{os.getuid()}"


def announce(bootstrap: str) -> str:
    """Record the embedded broker's address (see :func:`embedded_bootstrap`); returns the
    file written. The file names the owning process so a stale one is ignored."""
    directory = runtime_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, RUNTIME_FILE)
    with open(path, "w") as handle:
        handle.write(f"{bootstrap} {os.getpid()}\n")
    return path


def withdraw() -> None:
    """Remove the address file if this process wrote it."""
    path = os.path.join(runtime_dir(), RUNTIME_FILE)
    try:
        with open(path) as handle:
            _, pid = handle.read().split()
        if int(pid) == os.getpid():
            os.unlink(path)
    except (OSError, ValueError):
        pass


def embedded_bootstrap() -> str | None:
    """The address of the embedded broker a live ``rapport run``/``rapport broker`` started
    on this machine, or ``None``."""
    path = os.path.join(runtime_dir(), RUNTIME_FILE)
    try:
        with open(path) as handle:
            bootstrap, pid = handle.read().split()
        os.kill(int(pid), 0)  # raises if that process is gone
    except (OSError, ValueError):
        return None
    return bootstrap


def _addresses(broker: str) -> list[str]:
    """``host:port`` items of a broker address in any of the forms users pass: Faust's
    ``kafka://h:p;kafka://h2:p``, a bootstrap list ``h:p,h2:p`` (as ``rapport kafka``
    prints it), or ``kafka://h:p,h2:p``."""
    parts = (part.strip() for part in broker.replace(";", ",").split(","))
    return [part.split("://", 1)[-1] for part in parts if part]


def bootstrap_servers(broker: str) -> str:
    """Kafka clients' bootstrap list ``h:p,h2:p`` from any broker address form."""
    return ",".join(_addresses(broker))


def faust_broker(broker: str) -> str:
    """Faust's broker URL list ``kafka://h:p;kafka://h2:p`` from any broker address form
    (Faust reads ``kafka://h:p,h2:p`` as one host named ``h:p,h2``)."""
    return ";".join(f"kafka://{address}" for address in _addresses(broker))


class BrokerProbe:
    """Whether the broker answers a metadata request (readiness), with a short timeout."""

    def __init__(self, broker: str) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._client: AIOKafkaClient | None = None

    async def check(self) -> str | None:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(bootstrap_servers=self._bootstrap,
                                              request_timeout_ms=2000)
                await asyncio.wait_for(self._client.bootstrap(), 3)
            await asyncio.wait_for(self._client.fetch_all_metadata(), 3)
        except Exception as error:  # any failure means "not reachable now"
            if self._client is not None:
                await self._client.close()
                self._client = None
            return f"unreachable ({type(error).__name__})"
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

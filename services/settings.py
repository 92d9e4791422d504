"""Process settings, built once at an entry point: explicit argument > environment > default.

Every engine threshold of :class:`models.config.EngineConfig` has a variable
``RAPPORT_<FIELD>`` (e.g. ``RAPPORT_MIN_PAUSE_MS``), every alert rule setting a variable
``RAPPORT_ALERT_<FIELD>`` (e.g. ``RAPPORT_ALERT_SILENCE_MS``, ``RAPPORT_ALERT_NETWORK_ENABLED``);
docs/configuration.md lists them all with their defaults and meaning.

The report store (issue 5) adds three process settings: ``RAPPORT_DATA_DIR`` (where local
state lives), ``RAPPORT_DB_URL`` (the report database; default a SQLite file in the data
directory) and ``RAPPORT_PSEUDONYM_KEY`` (the HMAC key that pseudonymizes participant ids;
default a random key kept in the data directory). Resolving them creates nothing: the store
creates the directory and the key file when it opens (services/store).

The ingest adds ``RAPPORT_VAD_BACKEND``: the VAD of WebRTC audio mode (and of ``rapport vad``,
``rapport analyze --audio``), ``auto`` (default: ``silero`` when its extra is installed, else
``rapport`` with a WARNING), ``silero`` (the optional extra, no fallback) or ``rapport``
(services/ingest/vad_backend.py), and ``RAPPORT_VAD_MUSIC_GATE`` (``on`` or ``off``, the
default): the silero backend's music gate (models/vad_music.py), off by default because it
costs far-field speech under music (docs/vad.md, "Music and other sounds").

The ingest's per-token limits and body timeout (issue 16; services/ingest/limits.py) have
variables ``RAPPORT_INGEST_<FIELD>`` for the :class:`services.ingest.IngestConfig` fields in
:data:`INGEST_VARIABLES` (e.g. ``RAPPORT_INGEST_MAX_OPEN_SESSIONS_PER_TOKEN``), read by
``rapport ingest`` (whose flags beat them) and ``rapport run --port``.

The browser SDK (issue 18; docs/sdk.md) adds ``RAPPORT_CORS_ORIGINS`` (a comma list of page
origins allowed to call the ingest and read the coach stream; default none: same origin only),
``RAPPORT_SDK_DIR`` (the directory ``/sdk/`` serves; default the repository's ``clients/js``)
and ``RAPPORT_COACH`` (``on`` or ``off``: the therapist's private coach stream; default on),
with ``RAPPORT_COACH_OFF_CLINICS`` (a comma list of clinics for which it is off).

Kafka clients' TLS and SASL (a managed Kafka; issue 15) come from ``RAPPORT_KAFKA_*``
(:mod:`streams.kafka_security`): ``RAPPORT_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_MECHANISM``,
``..._SASL_USERNAME``, ``..._SASL_PASSWORD``, ``..._SSL_CAFILE``, ``..._SSL_CERTFILE``,
``..._SSL_KEYFILE``; every process of a deployment needs the same.

``RAPPORT_FAILPOINT`` is for crash tests only: ``after-report`` makes a streaming worker exit
the moment a final report is on the broker, before its closed marker is written;
``lose-changelog-record`` makes it drop the record a table recovery needs last from the first
changelog partition that gets there (streams/recovery_watchdog.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from models.config import AlertRules, EngineConfig
from models.errors import ConfigError
from streams.kafka_security import KafkaSecurity

ENGINE_PREFIX = "RAPPORT_"
ALERT_PREFIX = "RAPPORT_ALERT_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
DB_FILE = "rapport.db"
VAD_BACKENDS = ("auto", "silero", "rapport")  # services/ingest/vad_backend.py
FAILPOINTS = ("after-report", "lose-changelog-record")  # streams/app.py
INGEST_PREFIX = "RAPPORT_INGEST_"
# IngestConfig fields settable from the environment, with their type (services/ingest/service.py
# holds the defaults; importing it here would load aiortc into every command).
INGEST_VARIABLES: dict[str, type[int] | type[float]] = {
    "max_open_sessions_per_token": int,
    "events_per_s_per_token": float,
    "event_burst_per_token": int,
    "session_idle_s": float,
    "body_timeout_s": float,
}


def data_dir_from(env: Mapping[str, str]) -> Path:
    """``RAPPORT_DATA_DIR``, else ``$XDG_DATA_HOME/rapport``, else ``~/.local/share/rapport``."""
    if env.get("RAPPORT_DATA_DIR"):
        return Path(env["RAPPORT_DATA_DIR"]).expanduser()
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]).expanduser() / "rapport"
    return Path.home() / ".local" / "share" / "rapport"


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / DB_FILE}"


def _default_data_dir() -> Path:
    return data_dir_from(os.environ)


@dataclass(frozen=True, slots=True)
class Settings:
    engine: EngineConfig
    log_level: str = "WARNING"
    data_dir: Path = field(default_factory=_default_data_dir)
    db_url: str = ""  # "" means the default SQLite file in data_dir (see database_url)
    pseudonym_key: str | None = field(default=None, repr=False)  # None: key file in data_dir
    label_key: str | None = field(default=None, repr=False)  # RAPPORT_LABEL_KEY (issue 19)
    # Defaults of a clinic without its own policy (issue 19): reports kept this many days,
    # the audit log this many (6 years), and how often the reports service purges.
    retention_days: int = 365  # RAPPORT_RETENTION_DAYS
    audit_retention_days: int = 2192  # RAPPORT_AUDIT_RETENTION_DAYS
    purge_interval_s: float = 3600.0  # RAPPORT_PURGE_INTERVAL_S
    vad_backend: str = "auto"  # VAD of the ingest's audio mode
    vad_music_gate: bool = False  # RAPPORT_VAD_MUSIC_GATE (models/vad_music.py)
    failpoint: str | None = None  # crash tests only (RAPPORT_FAILPOINT)
    # IngestConfig fields set by RAPPORT_INGEST_* (only those set), as (field, value)
    ingest: tuple[tuple[str, int | float], ...] = ()
    cors_origins: tuple[str, ...] = ()  # RAPPORT_CORS_ORIGINS (services/cors.py)
    sdk_dir: Path | None = None  # RAPPORT_SDK_DIR; None: the repository's clients/js
    coach: bool = True  # RAPPORT_COACH
    coach_off_clinics: frozenset[str] = frozenset()  # RAPPORT_COACH_OFF_CLINICS
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)  # TLS/SASL of Kafka clients

    @property
    def ingest_overrides(self) -> dict[str, Any]:
        """Keyword arguments for IngestConfig from the environment."""
        return dict(self.ingest)

    @property
    def sdk_overrides(self) -> dict[str, Any]:
        """Keyword arguments for IngestConfig of the browser SDK (issue 18)."""
        return {"cors_origins": self.cors_origins, "sdk_dir": self.sdk_dir,
                "coach": self.coach, "coach_off_clinics": self.coach_off_clinics}

    @property
    def database_url(self) -> str:
        """The report database: ``db_url``, else ``sqlite:///<data_dir>/rapport.db``."""
        return self.db_url or default_db_url(self.data_dir)


def _convert(name: str, text: str, default: Any) -> Any:
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(name, f"must be true or false, got {text!r}")
    try:
        return int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ConfigError(name, f"must be {kind}, got {text!r}") from None


def engine_variables() -> list[tuple[str, str, Any]]:
    """(variable, setting path, default) for every engine and alert setting."""
    engine, alerts = EngineConfig(), AlertRules()
    rows = [
        (f"{ENGINE_PREFIX}{f.name.upper()}", f.name, getattr(engine, f.name))
        for f in fields(EngineConfig)
        if f.name != "alerts"
    ]
    rows += [
        (f"{ALERT_PREFIX}{f.name.upper()}", f"alerts.{f.name}", getattr(alerts, f.name))
        for f in fields(AlertRules)
    ]
    return rows


def parse_origins(text: str | Iterable[str], name: str = "RAPPORT_CORS_ORIGINS"
                  ) -> tuple[str, ...]:
    """Origins from a comma list (or several lists): each ``scheme://host[:port]``, no path;
    ``ConfigError`` naming ``name`` otherwise."""
    items = [text] if isinstance(text, str) else list(text)
    origins: list[str] = []
    for item in items:
        for part in item.split(","):
            origin = part.strip().rstrip("/").lower()
            if not origin:
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path \
                    or parts.query or parts.fragment:
                raise ConfigError(name, f"{part.strip()!r} is not an origin such as "
                                        "https://app.example.com (scheme, host, optional "
                                        "port; no path)")
            if origin not in origins:
                origins.append(origin)
    return tuple(origins)


def load_settings(
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
    log_level: str | None = None,
    db_url: str | None = None,
    data_dir: str | Path | None = None,
    vad_backend: str | None = None,
    vad_music_gate: bool | None = None,
) -> Settings:
    """Settings from ``overrides`` (``"min_pause_ms=250"``, ``"alerts.silence_ms=60000"``)
    and the explicit ``log_level``, ``db_url``, ``data_dir``, ``vad_backend`` and
    ``vad_music_gate`` arguments,
    then the environment, then defaults. Raises ``ConfigError`` naming the bad setting."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for variable, path, default in engine_variables():
        if variable in env:
            values[path] = _convert(variable, env[variable], default)
    known = {path: default for _, path, default in engine_variables()}
    for item in overrides:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep:
            raise ConfigError("--set", f"expected NAME=VALUE, got {item!r}")
        if path not in known:
            raise ConfigError(path, "unknown setting (see docs/configuration.md)")
        values[path] = _convert(path, text, known[path])
    engine_values = {k: v for k, v in values.items() if not k.startswith("alerts.")}
    alert_values = {k.removeprefix("alerts."): v for k, v in values.items()
                    if k.startswith("alerts.")}
    engine = EngineConfig().with_overrides(**engine_values, alerts=alert_values)
    level = log_level or env.get("RAPPORT_LOG_LEVEL", "WARNING").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("RAPPORT_LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR: {level}")
    directory = Path(data_dir).expanduser() if data_dir else data_dir_from(env)
    url = (db_url or env.get("RAPPORT_DB_URL", "")).strip()
    if url and "://" not in url:
        name = "--db-url" if db_url else "RAPPORT_DB_URL"
        raise ConfigError(name, f"must be a database URL such as sqlite:///path or "
                                f"postgresql+psycopg://user@host/db, got {url!r}")
    key = env.get("RAPPORT_PSEUDONYM_KEY") or None
    if key is not None and len(key.strip()) < 16:
        raise ConfigError("RAPPORT_PSEUDONYM_KEY", "must be at least 16 characters")
    label_key = env.get("RAPPORT_LABEL_KEY") or None
    if label_key is not None and len(label_key.strip()) < 16:
        raise ConfigError("RAPPORT_LABEL_KEY", "must be at least 16 characters")
    retention: dict[str, Any] = {}
    for variable, name, default in (("RAPPORT_RETENTION_DAYS", "retention_days", 365),
                                    ("RAPPORT_AUDIT_RETENTION_DAYS", "audit_retention_days",
                                     2192),
                                    ("RAPPORT_PURGE_INTERVAL_S", "purge_interval_s", 3600.0)):
        if env.get(variable, "").strip():
            value = _convert(variable, env[variable], default)
            if value <= 0:
                raise ConfigError(variable, f"must be greater than 0, got {value}")
            retention[name] = value
    backend = (vad_backend or env.get("RAPPORT_VAD_BACKEND", "") or "auto").strip().lower()
    if backend not in VAD_BACKENDS:
        name = "--vad-backend" if vad_backend else "RAPPORT_VAD_BACKEND"
        raise ConfigError(name, f"must be {', '.join(VAD_BACKENDS)}, got {backend!r}")
    if vad_music_gate is None:
        gate = env.get("RAPPORT_VAD_MUSIC_GATE", "off").strip().lower() or "off"
        if gate not in ("on", "off"):
            raise ConfigError("RAPPORT_VAD_MUSIC_GATE", f"must be on or off, got {gate!r}")
        vad_music_gate = gate == "on"
    failpoint = env.get("RAPPORT_FAILPOINT", "").strip() or None
    if failpoint is not None and failpoint not in FAILPOINTS:
        raise ConfigError("RAPPORT_FAILPOINT", f"must be {' or '.join(FAILPOINTS)} (crash "
                                               f"tests only), got {failpoint!r}")
    ingest: list[tuple[str, int | float]] = []
    for name, kind in INGEST_VARIABLES.items():
        variable = f"{INGEST_PREFIX}{name.upper()}"
        if env.get(variable, "").strip():
            value = _convert(variable, env[variable], kind(0))
            if value <= 0:
                raise ConfigError(variable, f"must be greater than 0, got {value}")
            ingest.append((name, value))
    origins = parse_origins(env.get("RAPPORT_CORS_ORIGINS", ""))
    sdk_dir = env.get("RAPPORT_SDK_DIR", "").strip()
    coach = env.get("RAPPORT_COACH", "on").strip().lower() or "on"
    if coach not in ("on", "off"):
        raise ConfigError("RAPPORT_COACH", f"must be on or off, got {coach!r}")
    off_clinics = frozenset(c.strip() for c in env.get("RAPPORT_COACH_OFF_CLINICS", "").split(",")
                            if c.strip())
    return Settings(engine=engine, log_level=level, data_dir=directory, db_url=url,
                    pseudonym_key=key.strip() if key else None,
                    label_key=label_key.strip() if label_key else None, **retention,
                    vad_backend=backend, vad_music_gate=vad_music_gate,
                    failpoint=failpoint, ingest=tuple(ingest), cors_origins=origins,
                    sdk_dir=Path(sdk_dir).expanduser() if sdk_dir else None,
                    coach=coach == "on", coach_off_clinics=off_clinics,
                    kafka=KafkaSecurity.from_env(dict(env)))

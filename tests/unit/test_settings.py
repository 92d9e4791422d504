"""Settings: explicit argument > environment > default, clear errors, documented variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.errors import ConfigError
from services.settings import INGEST_VARIABLES, engine_variables, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_are_the_metric_specification_defaults() -> None:
    engine = load_settings(env={}).engine
    assert (engine.min_pause_ms, engine.min_speech_ms, engine.bc_max_ms, engine.lapse_ms) == (
        200, 100, 1000, 3000)
    assert engine.alerts.silence_ms == 30_000


def test_environment_overrides_default_and_argument_overrides_environment() -> None:
    env = {"RAPPORT_LAPSE_MS": "2500", "RAPPORT_ALERT_SILENCE_ENABLED": "false"}
    assert load_settings(env=env).engine.lapse_ms == 2500
    assert load_settings(env=env).engine.alerts.silence_enabled is False
    settings = load_settings(env=env, overrides=["lapse_ms=4000", "alerts.silence_ms=9000"])
    assert settings.engine.lapse_ms == 4000
    assert settings.engine.alerts.silence_ms == 9000
    assert settings.engine.alerts.silence_enabled is False


@pytest.mark.parametrize(
    ("env", "overrides", "field"),
    [
        ({"RAPPORT_MIN_PAUSE_MS": "soon"}, [], "RAPPORT_MIN_PAUSE_MS"),
        ({"RAPPORT_ALERT_NETWORK_ENABLED": "maybe"}, [], "RAPPORT_ALERT_NETWORK_ENABLED"),
        ({}, ["no_such_threshold=1"], "no_such_threshold"),
        ({}, ["lapse_ms"], "--set"),
        ({}, ["min_pause_ms=-5"], "min_pause_ms"),
        ({"RAPPORT_LOG_LEVEL": "LOUD"}, [], "RAPPORT_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], overrides: list[str],
                                     field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env=env, overrides=overrides)
    assert raised.value.field == field


def test_every_variable_is_documented_with_its_default() -> None:
    docs = DOCS.read_text()
    for variable, path, default in engine_variables():
        rows = [line for line in docs.splitlines() if line.startswith(f"| `{variable}` |")]
        assert rows, f"{variable} missing from docs/configuration.md"
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert f"`{path}` | {shown} |" in rows[0], f"{variable}: default {shown} not documented"


def test_database_url_argument_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"RAPPORT_DATA_DIR": str(tmp_path / "data")}
    default = load_settings(env=env)
    assert default.data_dir == tmp_path / "data"
    assert default.database_url == f"sqlite:///{tmp_path / 'data' / 'rapport.db'}"
    assert not (tmp_path / "data").exists()  # resolving settings creates nothing
    env["RAPPORT_DB_URL"] = "postgresql+psycopg://u@db/rapport"
    assert load_settings(env=env).database_url == "postgresql+psycopg://u@db/rapport"
    explicit = load_settings(env=env, db_url="sqlite:////x/y.db")
    assert explicit.database_url == "sqlite:////x/y.db"


def test_data_directory_follows_xdg_then_home(tmp_path: Path) -> None:
    assert load_settings(env={"XDG_DATA_HOME": str(tmp_path)}).data_dir == tmp_path / "rapport"
    assert load_settings(env={}).data_dir == Path.home() / ".local" / "share" / "rapport"
    both = {"XDG_DATA_HOME": str(tmp_path), "RAPPORT_DATA_DIR": str(tmp_path / "own")}
    assert load_settings(env=both).data_dir == tmp_path / "own"
    assert load_settings(env=both, data_dir=tmp_path / "arg").data_dir == tmp_path / "arg"


def test_pseudonym_key_and_database_url_are_checked() -> None:
    assert load_settings(env={}).pseudonym_key is None
    key = "k" * 32
    assert load_settings(env={"RAPPORT_PSEUDONYM_KEY": key}).pseudonym_key == key
    assert key not in repr(load_settings(env={"RAPPORT_PSEUDONYM_KEY": key}))
    for env, field in (({"RAPPORT_PSEUDONYM_KEY": "short"}, "RAPPORT_PSEUDONYM_KEY"),
                       ({"RAPPORT_DB_URL": "/var/lib/rapport.db"}, "RAPPORT_DB_URL")):
        with pytest.raises(ConfigError) as raised:
            load_settings(env=env)
        assert raised.value.field == field


def test_every_process_variable_is_documented() -> None:
    source = (Path(__file__).resolve().parents[2] / "services" / "settings.py").read_text()
    documented = {line.split("`")[1] for line in DOCS.read_text().splitlines()
                  if line.startswith("| `RAPPORT_")}
    used = set(re.findall(r'"(RAPPORT_[A-Z_]+)"', source)) - {"RAPPORT_", "RAPPORT_ALERT_",
                                                               "RAPPORT_INGEST_"}
    used |= {f"RAPPORT_INGEST_{name.upper()}" for name in INGEST_VARIABLES}
    assert used <= documented, f"undocumented: {sorted(used - documented)}"
    assert {"RAPPORT_DATA_DIR", "RAPPORT_DB_URL", "RAPPORT_PSEUDONYM_KEY"} <= used


def test_vad_backend_argument_beats_environment_beats_default() -> None:
    assert load_settings(env={}).vad_backend == "auto"
    env = {"RAPPORT_VAD_BACKEND": "silero"}
    assert load_settings(env=env).vad_backend == "silero"
    assert load_settings(env=env, vad_backend="rapport").vad_backend == "rapport"
    for env, explicit, field in (({"RAPPORT_VAD_BACKEND": "webrtc"}, None,
                                  "RAPPORT_VAD_BACKEND"), ({}, "torch", "--vad-backend")):
        with pytest.raises(ConfigError) as raised:
            load_settings(env=env, vad_backend=explicit)
        assert raised.value.field == field


def test_ingest_limits_come_from_the_environment_and_are_checked() -> None:
    load = load_settings
    settings = load(env={"RAPPORT_INGEST_MAX_OPEN_SESSIONS_PER_TOKEN": "50",
                         "RAPPORT_INGEST_EVENTS_PER_S_PER_TOKEN": "120.5"})
    assert settings.ingest_overrides == {"max_open_sessions_per_token": 50,
                                         "events_per_s_per_token": 120.5}
    assert load(env={}).ingest_overrides == {}
    with pytest.raises(ConfigError, match="RAPPORT_INGEST_SESSION_IDLE_S"):
        load(env={"RAPPORT_INGEST_SESSION_IDLE_S": "0"})
    with pytest.raises(ConfigError, match="RAPPORT_INGEST_EVENT_BURST_PER_TOKEN"):
        load(env={"RAPPORT_INGEST_EVENT_BURST_PER_TOKEN": "lots"})

"""The deployment files (docker-compose.yml, deploy/): validated with the real tools where they
exist, and cross-checked against the code (topics, CLI options, ports, metric names).

Tools: ``docker compose`` (or Debian's ``docker-compose``) for the compose file, ``promtool``
(Debian package ``prometheus``) for the Prometheus configuration, rules and rule unit tests,
``kubernetes-validate`` (a dev extra shipping the Kubernetes schemas) for deploy/k8s. Locally a
missing tool skips its test with the reason; with ``CI=true`` it fails (.ci/run installs them).
No Docker engine is needed (none runs on the development machine): nothing is started.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from models.topics import DEFAULT_APP_ID, DEFAULT_PARTITIONS, Topics
from services.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
CI = os.environ.get("CI") == "true"
RAPPORT_SERVICES = ("worker", "ingest", "reports")
IMAGE = "rapport:0.1.0"
# Metrics the processes export but the registry check cannot see yet (none: every metric
# the rules and the dashboard use is registered by streams/, services/ingest or services/reports).
PENDING_METRICS: set[str] = set()
# Prometheus' own series.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def missing_tool(what: str) -> None:
    """Skip locally, fail in CI: CI must validate with the real tool."""
    message = f"{what} (.ci/run installs it; apt-get install docker-compose prometheus)"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


# --- compose -----------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_validates_with_docker_compose() -> None:
    command = compose_command()
    if command is None:
        missing_tool("neither `docker compose` nor `docker-compose` is installed")
    assert command is not None
    done = run([*command, "-f", str(COMPOSE), "config", "-q"])
    assert done.returncode == 0, done.stderr
    # The resolved file too: every service present, the worker scalable.
    done = run([*command, "-f", str(COMPOSE), "config"])
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) >= {"kafka", "topics", "worker", "ingest", "reports",
                                         "postgres", "prometheus", "grafana"}


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:15")
    for name, service in services.items():
        image = service["image"]
        assert not image.endswith(":latest") and ":" in image, f"{name}: pin {image}"
    for name in RAPPORT_SERVICES:
        assert services[name]["image"] == IMAGE
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["environment"]["RAPPORT_LOG_FORMAT"] == "json"


def test_workers_are_scalable(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "RAPPORT_DB_URL" not in worker.get("environment", {})


def test_topics_job_creates_every_topic_with_one_partition_count(
        compose: dict[str, Any]) -> None:
    job = compose["services"]["topics"]
    assert int(job["environment"]["PARTITIONS"]) == DEFAULT_PARTITIONS
    script = "\n".join(job["command"])
    created = dict(re.findall(r"^\s*topic (\S+)(.*)$", script, re.MULTILINE))
    expected = [spec.name for spec in Topics().specs(DEFAULT_PARTITIONS, DEFAULT_APP_ID)]
    assert sorted(created) == sorted(expected)
    assert "rapport-sessions-changelog" in created
    assert "cleanup.policy=compact" in created["rapport-sessions-changelog"]
    for name in expected:
        if name != "rapport-sessions-changelog":
            assert "cleanup.policy=delete" in created[name] and "retention.ms=" in created[name]
    checked = re.search(r"for name in (.*); do", script)
    assert checked is not None and sorted(checked.group(1).split()) == sorted(expected)
    assert '--partitions "$$PARTITIONS"' in script
    # Nothing else creates topics: auto-creation would use other partition counts.
    assert compose["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == \
        "false"


def parse_cli(args: list[str]) -> Any:
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`rapport {shlex.join(args)}` is not a valid command line")


def compose_args(compose: dict[str, Any], name: str) -> Any:
    command = compose["services"][name]["command"]
    return parse_cli([str(part) for part in command])


def test_rapport_commands_parse_and_ports_line_up(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = compose_args(compose, "worker")
    assert worker.command == "worker" and worker.partitions == DEFAULT_PARTITIONS
    assert worker.declare_topics == "no" and worker.broker == "kafka://kafka:19092"
    assert worker.web_host == "0.0.0.0"
    ingest = compose_args(compose, "ingest")
    assert ingest.command == "ingest" and ingest.host == "0.0.0.0"
    reports = compose_args(compose, "reports")
    assert reports.command == "reports" and reports.host == "0.0.0.0"
    assert reports.broker, "reports must run the store consumer (--broker)"
    ports = {"worker": worker.web_port, "ingest": ingest.port, "reports": reports.port}
    for name, port in ports.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in probe
    assert services["ingest"]["ports"] == [f"127.0.0.1:{ingest.port}:{ingest.port}"]
    assert services["reports"]["ports"] == [f"127.0.0.1:{reports.port}:{reports.port}"]
    # Prometheus scrapes each on the port it serves.
    scrape = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    dns = scrape["rapport-worker"]["dns_sd_configs"][0]
    assert dns["names"] == ["worker"] and dns["port"] == worker.web_port
    assert scrape["rapport-ingest"]["static_configs"][0]["targets"] == [f"ingest:{ingest.port}"]
    assert scrape["rapport-reports"]["static_configs"][0]["targets"] == \
        [f"reports:{reports.port}"]


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE)
    assert stages == [("${PYTHON_IMAGE}", "builder"), ("${PYTHON_IMAGE}", "runtime")]
    runtime = text.split(" AS runtime", 1)[1]
    assert "build-essential" not in runtime and "apt-get install" not in runtime
    assert "COPY --from=builder /opt/rapport /opt/rapport" in runtime
    user = re.search(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["rapport"]' in runtime
    assert "RAPPORT_LOG_FORMAT=json" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "out"} <= set(ignored)
    copied = {word for line in text.splitlines() if line.startswith("COPY ")
              and "--from=" not in line for word in line.split()[1:-1]}
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "models", "streams",
                   "services"):
        assert needed not in ignored and needed in copied


# --- Prometheus --------------------------------------------------------------------------


def prometheus_config() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        missing_tool("promtool is not installed (Debian package prometheus)")
    return run(["promtool", *args], cwd=DEPLOY / "prometheus")


def test_promtool_checks_the_configuration_and_rules() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    done = promtool("test", "rules", "rules_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def known_metrics() -> set[str]:
    """Every series name the Rapport processes export, from the prometheus_client registry
    once the modules defining metrics are imported."""
    for module in ("streams.metrics", "services.web", "services.metrics",
                   "services.ingest.metrics", "services.reports.metrics"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    names = set(PROMETHEUS_SERIES)
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total", "_created"),
                    "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("", "_sum", "_count", "_created"),
                    "info": ("_info",)}.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def metric_names(expression: str) -> set[str]:
    names = set(re.findall(r"\b(rapport_[a-z0-9_]+)", expression))
    names.update(re.findall(r"\b(up|ALERTS)\b(?=\s*[{)\s=<>!]|$)", expression))
    return names


def test_every_metric_in_rules_and_dashboard_exists() -> None:
    known = known_metrics() | PENDING_METRICS
    assert {"rapport_events_consumed_total", "rapport_events_rejected_total",
            "rapport_update_latency_seconds_bucket", "rapport_partitions_assigned"} <= known
    # Those of ingest and reports (their own /metrics; docs/operations.md, "Metrics").
    assert {"rapport_store_writes_total", "rapport_store_failures_total",
            "rapport_ingest_events_total", "rapport_ingest_rejected_total",
            "rapport_webrtc_peers", "rapport_vad_real_time_factor_bucket"} <= known
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"RapportWorkerDown", "RapportConsumerLagGrowing", "RapportDeadLettersGrowing",
            "RapportNoPartitionsAssigned"} <= alerts
    expressions += [target["expr"] for panel in dashboard_panels() for target in
                    panel.get("targets", [])]
    used: set[str] = set()
    for expression in expressions:
        names = metric_names(expression)
        assert names, f"no metric in {expression!r}"
        unknown = names - known
        assert not unknown, f"{expression!r} uses unknown metrics {sorted(unknown)}"
        used |= names
    # The dashboard covers what the issue asks for.
    assert {"up", "rapport_partitions_assigned", "rapport_consumer_lag",
            "rapport_events_consumed_total", "rapport_events_rejected_total",
            "rapport_update_latency_seconds_bucket", "rapport_sessions_active",
            "rapport_alerts_total"} <= used


# --- Grafana -----------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data = json.loads((DEPLOY / "grafana" / "dashboards" / "rapport.json").read_text())
    assert isinstance(data, dict)
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_grafana_provisioning_and_dashboard_line_up(compose: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "rapport.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    board = dashboard()
    assert board["uid"] and board["title"] == "Rapport"
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


# --- Kubernetes --------------------------------------------------------------------------


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    documents = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    return documents


def test_k8s_manifests_validate_against_the_kubernetes_schemas() -> None:
    try:
        validator = importlib.import_module("kubernetes_validate")
    except ImportError:
        missing_tool("kubernetes-validate is not installed (pip install -e '.[dev]')")
    documents = k8s_documents()
    assert len(documents) >= 9
    for path, document in documents:
        try:
            validator.validate(document, validator.latest_version(), strict=True)
        except validator.ValidationError as error:
            pytest.fail(f"{path.name} {document['kind']}: {error}")


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in args]


def test_k8s_deployments_line_up_with_the_cli_and_each_other(compose: dict[str, Any]) -> None:
    config = resources("ConfigMap")["rapport-config"]["data"]
    secret = resources("Secret")["rapport-secrets"]["stringData"]
    deployments = resources("Deployment")
    services = resources("Service")
    assert set(deployments) == {"rapport-worker", "rapport-ingest", "rapport-reports"}
    assert all(doc["metadata"]["namespace"] == "rapport"
               for _, doc in k8s_documents() if doc["kind"] != "Namespace")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= \
            pod["metadata"]["labels"].items()
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["image"] == IMAGE
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = dict(config)
        if any("secretRef" in source for source in container.get("envFrom", [])):
            env.update(secret)
        args = parse_cli(expand(container["args"], env))
        port = args.web_port if args.command == "worker" else args.port
        (declared,) = container["ports"]
        assert declared["containerPort"] == port, name
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": declared["name"]}
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        if args.command == "worker":
            assert args.web_host == "0.0.0.0"
            assert args.partitions == int(config["RAPPORT_PARTITIONS"])
            assert "secretRef" not in str(container.get("envFrom"))
        else:
            assert args.host == "0.0.0.0"
            service = services[name]
            assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
            assert service["spec"]["ports"][0]["targetPort"] == declared["name"]
            assert service["spec"]["ports"][0]["port"] == port
        if args.command == "reports":
            assert args.broker, "reports must run the store consumer (--broker)"
    # The same ports as the compose stack.
    for name in RAPPORT_SERVICES:
        ours = compose_args(compose, name)
        port = ours.web_port if name == "worker" else ours.port
        k8s = deployments[f"rapport-{name}"]["spec"]["template"]["spec"]["containers"][0]
        assert k8s["ports"][0]["containerPort"] == port
    # Replicas bounded by partitions.
    partitions = int(config["RAPPORT_PARTITIONS"])
    hpa = resources("HorizontalPodAutoscaler")["rapport-worker"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "rapport-worker"
    assert hpa["maxReplicas"] == partitions
    assert deployments["rapport-worker"]["spec"]["replicas"] <= partitions
    # The topics job creates the same topics as the compose one.
    job = resources("Job")["rapport-topics"]["spec"]["template"]["spec"]["containers"][0]
    created = re.findall(r"^\s*topic (\S+)", job["args"][0], re.MULTILINE)
    assert sorted(created) == sorted(spec.name for spec in Topics().specs())


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {path.name for path in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["resources"][0] == "namespace.yaml"

"""ops/ is checked by the real tools: promtool, a real Prometheus, and Kubernetes schemas."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import tablestream
from tablestream import create_app
from tablestream.config import SETTINGS
from tablestream.testing import httpraw

from .prometheus import poll, prometheus, query
from .servers import ROOT

OPS = ROOT / "ops"
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.system  # promtool and a real Prometheus


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing; tests/system/install-deps.sh installs it")
        pytest.skip(
            f"{name} not installed (make test installs it via tests/system/install-deps.sh)"
        )
    return path


def _run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_prometheus_config_and_alert_rules_pass_promtool():
    promtool = _tool("promtool")
    assert "SUCCESS" in _run(promtool, "check", "config", OPS / "prometheus.yml")
    assert "SUCCESS: 9 rules found" in _run(promtool, "check", "rules", OPS / "alerts.yml")


def test_alert_unit_tests_fire_and_stay_quiet_as_written():
    promtool = _tool("promtool")
    assert "SUCCESS" in _run(promtool, "test", "rules", OPS / "rules.test.yml")


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [e.replace("$__rate_interval", "5m").replace("$job", ".*") for e in exprs]


def test_every_dashboard_query_is_valid_promql(tmp_path):
    promtool = _tool("promtool")
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in _run(promtool, "check", "rules", path)
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (table (rate(x[5m]))"}]}]}))  # fmt: skip
    done = subprocess.run([promtool, "check", "rules", broken], capture_output=True)
    assert done.returncode != 0  # the check can fail


def test_every_metric_named_in_ops_is_exported_by_the_service(settings_for):
    client = create_app(settings_for()).test_client()
    client.get("/tables/synthetic?limit=10").close()
    exported = set(re.findall(r"^(\w+)", client.get("/metrics").get_data(as_text=True), re.M))
    text = "\n".join(
        p.read_text() for p in [*OPS.glob("*.yml"), *OPS.glob("*.json")] if p.is_file()
    )
    used = set(re.findall(r"\btablestream_\w+", text))
    assert len(used) >= 8
    assert used <= exported, used - exported


def _k8s_documents() -> list[tuple[Path, dict]]:
    return [
        (path, doc)
        for path in sorted((OPS / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_kubernetes_manifests_validate_against_a_recent_schema():
    docs = _k8s_documents()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds
    version = kubernetes_validate.latest_version()
    for _, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    deployment = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_deployment_probes_and_grace_period_fit_the_service():
    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert {"requests", "limits"} <= set(container["resources"])


def _container_setting(container: dict, env: str) -> object:
    """A setting as the container gets it: its value in the manifest, else the declared default."""
    (declared,) = [s for s in SETTINGS if s.env == env]
    given = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return declared.convert(given.get(env, declared.default))


def test_termination_grace_covers_the_pause_the_shutdown_grace_and_the_cut_markers():
    """A pod killed before its cut streams got their marker out leaves clients with neither a
    footer nor a marker: the period must hold the preStop pause, the streams' grace and the
    markers' time, as the settings declare them (or the manifest sets them)."""
    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    pause = float(command[1])
    grace = _container_setting(container, "TABLESTREAM_SHUTDOWN_GRACE")
    markers = _container_setting(container, "TABLESTREAM_CUT_MARKER_TIMEOUT")
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + markers, (pause, grace, markers)


def _nginx_fail_timeouts() -> list[float]:
    """Every ``fail_timeout=`` of the shipped nginx upstreams, in seconds."""
    units = {"": 1, "s": 1, "m": 60}
    return [
        float(number) * units[unit]
        for path in sorted((OPS / "nginx").glob("*.conf"))
        for number, unit in re.findall(r"fail_timeout=(\d+(?:\.\d+)?)(s|m|)\b", path.read_text())
    ]


def test_rolling_update_waits_out_the_balancers_fail_timeout_one_pod_at_a_time():
    """nginx may hold a ready replacement out for fail_timeout after its predecessor's drain
    failed requests to it; a rollout that drains the next pod sooner leaves no live server."""
    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    timeouts = _nginx_fail_timeouts()
    assert timeouts, "no fail_timeout in ops/nginx/*.conf"
    assert deployment["spec"]["minReadySeconds"] >= max(timeouts)
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 1


def test_redis_url_is_optional_and_comes_from_a_secret():
    """Replicas may share Redis (docs/redis.md); a pod without the Secret still starts."""
    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (redis,) = [e for e in container["env"] if e["name"] == "TABLESTREAM_REDIS_URL"]
    assert "value" not in redis
    assert redis["valueFrom"]["secretKeyRef"]["optional"] is True


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of ops/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (OPS / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_the_container_image_is_the_one_the_deployment_runs():
    """No engine builds the image here, so what can be checked without one is: it installs the
    wheel the way tests/test_install.py proves, and its user, ports, command and tag are the
    ones ops/k8s/deployment.yaml expects."""
    steps = _dockerfile_instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "python -m build --outdir /dist ." in runs
    assert "pip install --no-cache-dir /tmp/wheels/tablestream-*.whl" in runs
    assert "pip install -e" not in runs
    (user,) = [args for op, args in steps if op == "USER"]
    exposed = {int(p) for op, args in steps if op == "EXPOSE" for p in args.split()}
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(dict(steps)["CMD"])[:2] == ["tablestream", "serve"]

    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"tablestream:{tablestream.__version__}"
    assert container["command"] == ["tablestream", "serve"]
    assert user == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['fsGroup']}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports.values()) <= exposed
    for probe in ("readinessProbe", "livenessProbe"):
        assert ports[container[probe]["httpGet"]["port"]] in exposed


def test_kubernetes_scrape_config_passes_promtool(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery, so its promtool rejects
    ``kubernetes_sd_configs`` as an unknown field; the block is swapped for a static target and
    everything else (relabel regexes, labels, rule files) is checked as written."""
    promtool = _tool("promtool")
    configmap = next(doc for _, doc in _k8s_documents() if doc["kind"] == "ConfigMap")
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    config["rule_files"] = [str(OPS / "alerts.yml")]
    job = config["scrape_configs"][0]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    assert "SUCCESS" in _run(promtool, "check", "config", path)


def _prometheus(tmp_path: Path, scrape_configs: list[dict]) -> contextlib.AbstractContextManager:
    _tool("prometheus")
    return prometheus(tmp_path, scrape_configs)


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_exact_bytes_a_client_received(process_server, tmp_path):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_SYNTHETIC_ROWS="100000")
    target = server.url.removeprefix("http://")
    job = {"job_name": "tablestream", "static_configs": [{"targets": [target]}]}
    with _prometheus(tmp_path, [job]) as api:
        response = httpraw.get(f"{server.url}/tables/synthetic?limit=30000", keep=False)
        assert response.terminated
        seen = poll(
            api,
            'tablestream_stream_bytes_total{table="synthetic"}',
            lambda seen: bool(seen) and float(seen[0]["value"][1]) == response.size,
        )
        assert seen, "Prometheus never reported tablestream_stream_bytes_total"
        assert float(seen[0]["value"][1]) == response.size
        rows = query(api, 'tablestream_stream_rows_total{table="synthetic"}')
        assert float(rows[0]["value"][1]) == 30000
        assert query(api, 'up{job="tablestream"}')[0]["value"][1] == "1"


@pytest.mark.slow
def test_prometheus_scrapes_a_token_protected_service_with_a_metrics_token(
    process_server, tmp_path
):
    # The setup ops/prometheus.yml describes: a token with the metrics scope, from a file.
    from tablestream.access.tokens import add_token

    tokens = tmp_path / "tokens.toml"
    token = add_token(str(tokens), "prometheus", tables=[], scopes=["metrics"])
    credentials = tmp_path / "tablestream.token"
    credentials.write_text(token + "\n")
    server = process_server(
        TABLESTREAM_DB="", TABLESTREAM_SYNTHETIC_ROWS="1000", TABLESTREAM_TOKENS_FILE=str(tokens)
    )
    target = [{"targets": [server.url.removeprefix("http://")]}]
    jobs = [
        {
            "job_name": "with_token",
            "static_configs": target,
            "authorization": {"credentials_file": str(credentials)},
        },
        {"job_name": "without", "static_configs": target},
    ]
    with _prometheus(tmp_path, jobs) as api:
        up = poll(api, "up", lambda seen: len(seen) == 2)
        assert {s["metric"]["job"]: s["value"][1] for s in up} == {
            "with_token": "1",
            "without": "0",
        }
        failures = poll(
            api,
            'tablestream_auth_failures_total{job="with_token",reason="missing"}',
            lambda seen: bool(seen) and float(seen[0]["value"][1]) > 0,
        )
        assert failures, "the unauthenticated scrapes were not counted"

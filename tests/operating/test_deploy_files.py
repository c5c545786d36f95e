"""The deployment files hold together: no Docker engine runs here, so these check what can
drift without one noticing — the production compose file's shape, the search attributes it
registers against temporal-dev.yml's, the packages the image copies against pyproject's,
and every metric the alerts and the dashboard ask for against the ones the service
exports."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

import telemetry.metrics as service_metrics
from refundctl.devserver import compose_search_attributes

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    return loaded


def test_the_production_compose_file_runs_temporal_on_postgres_and_two_of_each() -> None:
    services = compose()["services"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["temporal-db"]["image"].startswith("postgres:")
    assert services["service-db"]["image"].startswith("postgres:")
    for name in ("api", "worker"):
        service = services[name]
        assert service["deploy"]["replicas"] == 2, name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["environment"]["ENVIRONMENT"] == "production"
        assert "temporal:7233" == service["environment"]["TEMPORAL_ADDRESS"]
    assert services["worker"]["command"] == ["worker"]
    # Apart from the dev server's file: nothing here starts `server start-dev`.
    assert all("start-dev" not in str(s.get("command", "")) for s in services.values())


def test_the_namespace_setup_registers_the_contracts_search_attributes() -> None:
    script = (DEPLOY / "temporal" / "setup-namespace.sh").read_text()
    registered = dict(re.findall(r"^\s+(\w+)=(\w+)(?: \\)?$", script, re.M))
    assert registered == compose_search_attributes()


def test_the_image_copies_every_package_and_ships_compiled() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert copied == packages
    assert "python -m compileall" in dockerfile
    assert "WORKER_BUILD_ID=${BUILD_ID}" in dockerfile


def exported() -> set[str]:
    names: set[str] = set()
    for value in vars(service_metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                base = family.name
                names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    return names


def asked_for(expressions: list[str]) -> set[str]:
    return {name for e in expressions for name in re.findall(r"\bkami_[a-z_]+\b", e)}


def test_the_alerts_and_the_dashboard_ask_for_metrics_that_exist() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alert_exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    for wanted in (
        "KamiReviewDeadlineMissed",
        "KamiRefundStuckRefunding",
        "KamiPayoutsFailing",
        "KamiLedgerImbalance",
        "KamiBuyerMessagesFailing",
    ):
        assert wanted in names
    dashboard = json.loads((DEPLOY / "grafana" / "kami-refunds.json").read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    missing = asked_for(alert_exprs + panel_exprs) - exported()
    assert not missing, f"asked for but never exported: {sorted(missing)}"
    assert dashboard["uid"] == "kami-refunds" and len(panel_exprs) > 20

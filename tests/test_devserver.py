"""temporal-dev.yml is the single source of the dev server's options, and they take effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from config.settings import Settings
from refundctl.devserver import COMPOSE_FILE, compose_search_attributes, dev_server_args
from refundctl.stack import DevServerSpec, StackSpec, start_stack
from tests.harness import temporal_dev_server

# The CONTRACT's "Temporal surface", written out independently of temporal-dev.yml.
CONTRACT_SEARCH_ATTRIBUTES = {
    "RefundStatus": "Keyword",
    "OrderId": "Keyword",
    "MerchantId": "Keyword",
    "BuyerId": "Keyword",
    "RefundAmount": "Int",
    "RiskLevel": "Keyword",
    "ReviewDeadline": "Datetime",
}
# Incidents' (issue 11): an incident's refunds and the incident itself carry its id.
INCIDENT_SEARCH_ATTRIBUTES = {"IncidentId": "Keyword", "IncidentState": "Keyword"}
REGISTERED_SEARCH_ATTRIBUTES = {**CONTRACT_SEARCH_ATTRIBUTES, **INCIDENT_SEARCH_ATTRIBUTES}

INDEXED_TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
    IndexedValueType.INDEXED_VALUE_TYPE_TEXT: "Text",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
    IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool",
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
}


def _compose_service() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    service: dict[str, Any] = doc["services"]["temporal"]
    return service


def _compose_flag_values(flag: str) -> list[str]:
    return [arg.split("=", 1)[1] for arg in _compose_service()["command"] if arg.startswith(flag)]


def test_compose_file_is_a_runnable_service() -> None:
    service = _compose_service()
    assert service["image"].startswith("temporalio/temporal:")
    assert service["command"][:2] == ["server", "start-dev"]
    assert {"7233:7233", "8233:8233"} <= set(service["ports"])
    assert "--ip=0.0.0.0" in service["command"]


def test_compose_file_declares_the_contract_search_attributes() -> None:
    assert compose_search_attributes() == REGISTERED_SEARCH_ATTRIBUTES


def test_dev_server_args_carry_every_option_of_the_compose_file() -> None:
    argv = dev_server_args(port=17233, ui_port=18233, db_file="var/x.db", headless=False)

    for value in _compose_flag_values("--search-attribute="):
        assert f"--search-attribute={value}" in argv
    pragmas = _compose_flag_values("--sqlite-pragma=")
    assert {"journal_mode=wal", "synchronous=off"} <= set(pragmas)
    for value in pragmas:
        assert f"--sqlite-pragma={value}" in argv

    # Host-specific parts are ours, each exactly once; the container's are gone.
    assert argv[1:3] == ["server", "start-dev"]
    assert Path(argv[0]).name == "temporal"
    assert [a for a in argv if a.startswith("--ip")] == ["--ip=127.0.0.1"]
    assert [a for a in argv if a.startswith("--port")] == ["--port=17233"]
    assert [a for a in argv if a.startswith("--ui-port")] == ["--ui-port=18233"]
    assert [a for a in argv if a.startswith("--db-filename")] == ["--db-filename=var/x.db"]

    headless = dev_server_args(port=1, ui_port=2, db_file=None, headless=True)
    assert "--headless" in headless
    assert not [a for a in headless if a.startswith(("--ui-port", "--db-filename"))]


def test_dev_server_args_follow_edits_of_the_compose_file(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    # Both spellings compose users write: "--flag=value" and "--flag", "value".
    compose["services"]["temporal"]["command"] += ["--search-attribute", "Channel=Keyword"]
    edited = tmp_path / "temporal-dev.yml"
    edited.write_text(yaml.safe_dump(compose), encoding="utf-8")

    argv = dev_server_args(compose_file=edited, binary="temporal")
    assert "--search-attribute=Channel=Keyword" in argv
    assert compose_search_attributes(edited) == {
        **REGISTERED_SEARCH_ATTRIBUTES,
        "Channel": "Keyword",
    }


@pytest.mark.integration
async def test_dev_server_registers_the_contract_search_attributes() -> None:
    async with temporal_dev_server() as address:
        client = await Client.connect(address)
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        registered = {
            name: INDEXED_TYPE_NAMES.get(kind, str(kind))
            for name, kind in response.custom_attributes.items()
        }
    assert {name: registered.get(name) for name in REGISTERED_SEARCH_ATTRIBUTES} == (
        REGISTERED_SEARCH_ATTRIBUTES
    )


@pytest.mark.integration
async def test_dev_server_keeps_workflows_in_its_db_file_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "temporal.db"
    spec = StackSpec(
        settings=Settings(environment="test"),
        temporal=DevServerSpec(headless=True, db_file=db_file),
    )
    async with start_stack(spec) as stack:
        assert stack.temporal_address.startswith("127.0.0.1:")
        temporal = stack.process("temporal")
    assert temporal.exit_code == 0
    assert db_file.exists()

"""Replays every saved RefundWorkflow (and IncidentWorkflow) history against today's code.

A change to workflows/refund.py that would make a running refund take a different path
(new or reordered activities, timers, search-attribute upserts ...) fails here unless it
is guarded by `workflow.patched`. The histories in tests/histories/ are recorded from the
scenarios of this package named in `RECORDED` (support.py); refresh them only for a
deliberate, patched change:

    REGENERATE_HISTORIES=1 .venv/bin/pytest tests/workflows

(new scenarios then add a file; keep the old files too, they are what is still running in
production). `tests/histories/before_lean/` holds the histories recorded before the lean
path (`workflows/before_lean.py`): they must replay down the old path for as long as the
patch stays. `tests/histories/incident/` holds IncidentWorkflow histories
(tests/workflows/test_incident.py records them the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.workflows.support import CONVERTER, HISTORIES, RECORDED
from workflows.incident import IncidentWorkflow
from workflows.refund import RefundWorkflow

SAVED = sorted(HISTORIES.rglob("*.json"))


def test_every_recorded_scenario_has_a_saved_history() -> None:
    """(Right after a first REGENERATE_HISTORIES=1 run, run once more: the files are
    collected before they are written.)"""
    assert RECORDED <= {path.stem for path in SAVED if path.parent == HISTORIES}


@pytest.mark.parametrize(
    "path", SAVED, ids=[str(p.relative_to(HISTORIES).with_suffix("")) for p in SAVED]
)
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"refund-{path.stem}", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=[RefundWorkflow, IncidentWorkflow], data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"

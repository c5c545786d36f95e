"""What the workflow is known by must match the workflow.

It calls its steps through declarations (`workflows.steps`) so that it imports nothing that
does I/O; the worker registers the real implementations, methods of the classes
`workers.wiring.RefundActivities` holds. The two must agree on every activity's name and
types, and the starter must start it by its own type name, or a refund would fail at run
time, not here."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.workflow import _Definition

from workers.wiring import RefundActivities
from workflows import incident_steps, steps
from workflows.incident import IncidentWorkflow
from workflows.refund import RefundWorkflow
from workflows.search import INCIDENT_WORKFLOW_TYPE, WORKFLOW_TYPE


def _name(fn: Callable[..., Any]) -> str | None:
    defn = activity._Definition.from_callable(fn)
    return defn.name if defn else None


def _types(fn: Callable[..., Any]) -> list[Any]:
    hints = typing.get_type_hints(fn)
    return [hints[p] for p in hints if p != "return"] + [hints.get("return")]


def _implementations() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    hints = typing.get_type_hints(RefundActivities)
    for f in dataclasses.fields(RefundActivities):
        for _, member in inspect.getmembers(hints[f.name], inspect.isfunction):
            name = _name(member)
            if name:
                found[name] = member
    return found


def test_every_declared_step_is_implemented_with_the_same_types() -> None:
    implemented = _implementations()
    declared = {
        _name(getattr(module, n)): getattr(module, n)
        for module in (steps, incident_steps)
        for n in module.__all__
    }
    assert set(declared) <= set(implemented), set(declared) - set(implemented)
    for name, declaration in declared.items():
        assert name is not None
        assert _types(declaration) == _types(implemented[name]), name


def test_the_starter_starts_the_workflow_by_its_own_name() -> None:
    assert _Definition.must_from_class(RefundWorkflow).name == WORKFLOW_TYPE
    assert _Definition.must_from_class(IncidentWorkflow).name == INCIDENT_WORKFLOW_TYPE


def test_the_worker_registers_every_declared_step() -> None:
    """A step declared but missing from `RefundActivities.activities()` fails at run time."""
    hints = typing.get_type_hints(RefundActivities)
    parts = {
        f.name: hints[f.name].__new__(hints[f.name]) for f in dataclasses.fields(RefundActivities)
    }
    registered = {_name(fn) for fn in RefundActivities(**parts).activities()}
    declared = {
        _name(getattr(module, n)) for module in (steps, incident_steps) for n in module.__all__
    }
    assert declared <= registered, declared - registered

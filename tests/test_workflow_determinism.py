"""The workflow's own modules pass through the sandbox (workers/main.py): the sandbox no longer
stops them from reading the clock, randomness or the environment, so this does. Every module
under workflows/ is read as source; a call that would make a replay take another path fails
here, before any refund runs it. (I/O imports are the import contracts' job.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

# Dotted names a workflow must reach through `workflow.*` instead (now, random, uuid4,
# sleep, wait_condition...), or not at all.
FORBIDDEN = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "asyncio.sleep",
    "os.environ",
    "os.getenv",
    "uuid.uuid1",
    "uuid.uuid4",
}
FORBIDDEN_MODULES = {
    "random",
    "secrets",
    "threading",
    "socket",
    "subprocess",
    "httpx",
    "sqlalchemy",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def offences(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and dotted(node) in FORBIDDEN:
            found.append(f"line {node.lineno}: {dotted(node)}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for name in [module, *names] if module else names:
                if name and name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {name}")
    return found


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.py")), ids=lambda p: p.name)
def test_workflow_code_reads_no_clock_randomness_or_environment(path: Path) -> None:
    assert offences(path.read_text(encoding="utf-8")) == []


def test_the_check_catches_what_it_should() -> None:
    caught = offences(
        "import random\nfrom datetime import datetime\nx = datetime.now()\nimport os\n"
        "y = os.environ['A']\n"
    )
    assert len(caught) == 3, caught

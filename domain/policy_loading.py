"""Loading the policy: YAML files validated into a `Policy` whose errors name the key path,
and `CurrentPolicy`, the policy the worker decides with, re-read when its file changes.

Only these functions read files; `yaml` is imported when a policy is parsed, not when this
module is, so workflow code may import `domain.policy` (which re-exports them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from domain.policy_sections import Policy
from domain.types import ProductType

DEFAULT_POLICY_RESOURCE = "default_policy.yaml"


class PolicyError(ValueError):
    """A policy that cannot be used. `path` is the dotted key path of the first problem."""

    def __init__(self, path: str, message: str, *, source: str = "") -> None:
        self.path = path
        self.message = message
        self.source = source
        where = f" ({source})" if source else ""
        super().__init__(f"policy invalid at {path}: {message}{where}")


def _error_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def _check_overrides(policy: Policy, *, source: str) -> None:
    """Every override must resolve to valid rules for every product type it can touch."""
    for merchant_id, merchant in sorted(policy.merchants.items()):
        try:
            policy.fast_lane_for(merchant_id)
        except ValidationError as exc:
            _raise_prefixed(f"merchants.{merchant_id}.fast_lane", exc, source)
        for sku in sorted(merchant.skus):
            _check_resolves(policy, f"merchants.{merchant_id}.skus.{sku}", merchant_id, sku, source)
        for product_type in sorted(merchant.product_types):
            path = f"merchants.{merchant_id}.product_types.{product_type}"
            _check_resolves(policy, path, merchant_id, "", source, only=product_type)
    for sku in sorted(policy.skus):
        _check_resolves(policy, f"skus.{sku}", "", sku, source)


def _check_resolves(
    policy: Policy,
    path: str,
    merchant_id: str,
    sku: str,
    source: str,
    *,
    only: ProductType | None = None,
) -> None:
    for product_type in [only] if only else list(ProductType):
        try:
            policy.rules_for(product_type=product_type, merchant_id=merchant_id, sku=sku)
        except ValidationError as exc:
            _raise_prefixed(path, exc, source)


def _raise_prefixed(prefix: str, exc: ValidationError, source: str) -> None:
    errors = exc.errors()
    first = errors[0]
    path = ".".join(part for part in (prefix, _error_path(tuple(first["loc"]))) if part)
    message = str(first["msg"]).removeprefix("Value error, ")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    raise PolicyError(path.removesuffix(".<root>"), message, source=source) from exc


def policy_from_data(data: Any, *, source: str = "") -> Policy:
    """Validate already-parsed data (a mapping) into a `Policy` with its `version` set."""
    if not isinstance(data, dict):
        raise PolicyError("<root>", "the policy must be a mapping of keys", source=source)
    if "version" in data:
        raise PolicyError("version", "computed from the content; remove the key", source=source)
    try:
        policy = Policy.model_validate({**data, "version": ""})
    except ValidationError as exc:
        _raise_prefixed("", exc, source)
        raise  # unreachable: _raise_prefixed always raises
    _check_overrides(policy, source=source)
    return policy.model_copy(update={"version": policy.content_hash()})


def parse_policy(text: str, *, source: str) -> Policy:
    """Parse YAML text into a validated `Policy`; `source` names it in error messages."""
    import yaml  # only policy loading needs yaml; workflow code imports this module too

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError("<root>", f"not valid YAML: {exc}", source=source) from exc
    return policy_from_data(data, source=source)


def default_policy_text() -> str:
    return resources.files("domain").joinpath(DEFAULT_POLICY_RESOURCE).read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file; `None` (or "") loads the shipped default."""
    if path is None or str(path) == "":
        return parse_policy(default_policy_text(), source=f"domain/{DEFAULT_POLICY_RESOURCE}")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError("<root>", f"cannot read the file: {exc}", source=str(file)) from exc
    return parse_policy(text, source=str(file))


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int


class CurrentPolicy:
    """The policy the worker decides with, re-read when its file changes.

    `get()` compares the file's modification time and size with the last load and re-reads
    on a change. A file that is missing or invalid never replaces a good policy: the old one
    stays in force and `last_error` says why the new one was refused. Only the first load
    raises, so a worker never starts without a valid policy. `path=None` is the shipped
    default, which never changes.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path) if path not in (None, "") else None
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = self._read_stamp() if self._path else None
        self._policy = load_policy(self._path)
        self._last_error: str | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def last_error(self) -> str | None:
        """Why the latest change to the file was refused; None once a good file loads."""
        return self._last_error

    def get(self) -> Policy:
        if self._path is not None:
            self._reload_if_changed()
        return self._policy

    def _read_stamp(self) -> _Stamp | None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return _Stamp(mtime_ns=stat.st_mtime_ns, size=stat.st_size)

    def _reload_if_changed(self) -> None:
        with self._lock:
            stamp = self._read_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            if stamp is None:
                self._last_error = (
                    f"policy file {self._path} is missing; keeping {self._policy.version}"
                )
                return
            try:
                self._policy = load_policy(self._path)
            except PolicyError as exc:
                self._last_error = f"{exc}; keeping {self._policy.version}"
            else:
                self._last_error = None

"""Policy loading: validation errors name the key, overrides merge, reloads keep a good policy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.policy import (
    CurrentPolicy,
    Policy,
    PolicyError,
    SelfHelp,
    default_policy_text,
    load_policy,
    parse_policy,
    policy_from_data,
)
from domain.types import Destination, ProductType, RiskLevel


def default_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_policy_text())
    return data


def test_shipped_default_encodes_the_baseline() -> None:
    policy = load_policy(None)
    card_key = policy.product_types.card_key.windows
    course = policy.product_types.course
    assert card_key.hard_limit_days == 7
    assert (course.windows.cooling_off_minutes, course.windows.conditional_hours) == (15, 24)
    assert course.windows.hard_limit_days is None
    assert course.usage.max_progress_pct == 10
    assert course.usage.downloaded_blocks and course.usage.key_revealed_blocks
    assert policy.fast_lane.max_amount == 1000
    assert policy.fast_lane.destination is Destination.BALANCE
    assert policy.fast_lane.max_risk is RiskLevel.LOW
    assert policy.review.deadline_hours == 24
    assert policy.name == "baseline"
    assert len(policy.version) == 12


def test_version_follows_content_not_formatting() -> None:
    text = default_policy_text()
    same = parse_policy(text + "\n# a comment\n", source="t")
    assert same.version == load_policy(None).version
    data = default_data()
    data["fast_lane"]["max_amount"] = 500
    assert policy_from_data(data).version != same.version


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (
            lambda d: d["product_types"]["course"]["windows"].update(cooling_off_minutes=-5),
            "product_types.course.windows.cooling_off_minutes",
        ),
        (
            lambda d: d["product_types"]["course"]["windows"].update(cooling_of_minutes=5),
            "product_types.course.windows.cooling_of_minutes",
        ),
        (lambda d: d["product_types"].pop("topup"), "product_types.topup"),
        (lambda d: d.update(version="abc"), "version"),
        (
            lambda d: d["product_types"].update(ebook=d["product_types"]["course"]),
            "product_types.ebook",
        ),
        (lambda d: d["fast_lane"].update(max_amount="ten yuan"), "fast_lane.max_amount"),
        (lambda d: d["fast_lane"].update(max_risk="blocked"), "fast_lane"),
        (
            lambda d: d["review"]["on_expiry"].update(max_risk="extreme"),
            "review.on_expiry.max_risk",
        ),
        (lambda d: d["reasons"]["keywords"].update(other=["x"]), "reasons"),
        (
            lambda d: d.update(
                merchants={"M-7": {"product_types": {"course": {"windows": {"refundable": None}}}}}
            ),
            "merchants.M-7.product_types.course.windows",
        ),
        (
            lambda d: d.update(skus={"steam-50": {"windowz": {}}}),
            "skus.steam-50.windowz",
        ),
        (
            lambda d: d.update(merchants={"M-7": {"fast_lane": {"max_risk": "blocked"}}}),
            "merchants.M-7.fast_lane",
        ),
    ],
)
def test_validation_errors_name_the_key_path(edit: Any, path: str) -> None:
    data = default_data()
    edit(data)
    with pytest.raises(PolicyError) as caught:
        policy_from_data(data, source="policy.yaml")
    assert caught.value.path == path
    assert str(caught.value).startswith(f"policy invalid at {path}: ")
    assert "policy.yaml" in str(caught.value)


def test_yaml_syntax_and_shape_errors() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("product_types: [", source="t")
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy("- a list", source="t")


def test_overrides_are_partial_and_most_specific_wins() -> None:
    data = default_data()
    data["merchants"] = {
        "M-7": {
            "product_types": {"course": {"windows": {"cooling_off_minutes": 30}}},
            "skus": {"python-course": {"usage": {"max_progress_pct": 20}}},
        }
    }
    data["skus"] = {"python-course": {"windows": {"cooling_off_minutes": 60}}}
    policy = policy_from_data(data)
    rules = policy.rules_for(
        product_type=ProductType.COURSE, merchant_id="M-7", sku="python-course"
    )
    assert rules.windows.cooling_off_minutes == 60  # SKU beats merchant product type
    assert rules.windows.conditional_hours == 24  # inherited from the product type
    assert rules.usage.max_progress_pct == 20  # merchant SKU, the most specific
    assert rules.usage.downloaded_blocks is True
    other = policy.rules_for(product_type=ProductType.COURSE, merchant_id="M-7", sku="other")
    assert other.windows.cooling_off_minutes == 30
    elsewhere = policy.rules_for(product_type=ProductType.COURSE, merchant_id="M-9", sku="other")
    assert elsewhere == policy.product_types.course


def test_explicit_null_override_removes_a_limit_and_survives_serialisation() -> None:
    data = default_data()
    data["skus"] = {"steam-unlimited": {"windows": {"hard_limit_days": None}}}
    policy = policy_from_data(data)
    rules = policy.rules_for(
        product_type=ProductType.CARD_KEY, merchant_id="M", sku="steam-unlimited"
    )
    assert rules.windows.hard_limit_days is None
    again = Policy.model_validate_json(policy.model_dump_json())
    # Self-help words are deliberately left out of the serialised policy (it travels in every
    # refund's history, which never needs them): everything else survives.
    assert again == policy.model_copy(update={"self_help": SelfHelp()})
    assert again.content_hash() == policy.version
    assert (
        again.rules_for(product_type=ProductType.CARD_KEY, merchant_id="M", sku="steam-unlimited")
        == rules
    )
    # An unrelated override leaves the inherited limit alone after the round trip too.
    assert again.skus["steam-unlimited"].model_dump() == {"windows": {"hard_limit_days": None}}


def _write(path: Path, data: dict[str, Any] | str, *, tick: int) -> None:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    stamp = 1_700_000_000 + tick
    os.utime(path, (stamp, stamp))


def test_current_policy_reloads_on_change_and_keeps_a_good_one(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    data = default_data()
    _write(file, data, tick=0)
    current = CurrentPolicy(file)
    first = current.get()
    assert current.last_error is None

    data["fast_lane"]["max_amount"] = 500
    _write(file, data, tick=1)
    second = current.get()
    assert second.fast_lane.max_amount == 500
    assert second.version != first.version

    _write(file, "fast_lane: {max_amount: -1}\n", tick=2)
    assert current.get() == second
    assert current.last_error is not None
    assert "policy invalid at" in current.last_error

    file.unlink()
    assert current.get() == second
    assert "missing" in (current.last_error or "")

    data["fast_lane"]["max_amount"] = 700
    _write(file, data, tick=3)
    assert current.get().fast_lane.max_amount == 700
    assert current.last_error is None


def test_current_policy_refuses_to_start_with_an_invalid_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("nonsense: true\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        CurrentPolicy(file)


def test_current_policy_without_a_path_is_the_shipped_default() -> None:
    assert CurrentPolicy(None).get() == load_policy(None)

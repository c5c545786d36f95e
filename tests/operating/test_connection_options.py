"""Where the client factory takes its connection from: Temporal's environment configuration
(variables and temporal.toml profiles), with addresses given in code or the environment on
top, and a configuration it cannot read refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.problems import cannot_start
from config.settings import Settings
from config.temporal import TemporalUnavailable, connection_options

PROFILE = """
[profile.production]
address = "temporal.example:7233"
namespace = "refunds"
api_key = "from-the-profile"

[profile.production.tls]
server_name = "temporal.example"
"""


@pytest.fixture(autouse=True)
def no_temporal_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read this process's environment: a developer's TEMPORAL_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)


def profile_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    toml = tmp_path / "temporal.toml"
    toml.write_text(PROFILE, encoding="utf-8")
    return {"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "production", **extra}


def test_with_nothing_set_it_is_the_local_dev_server(tmp_path: Path) -> None:
    options = connection_options(
        Settings(environment="test"), environ={"TEMPORAL_CONFIG_FILE": str(tmp_path / "none")}
    )
    assert options == {"target_host": "127.0.0.1:7233", "namespace": "default"}


def test_the_variables_temporal_reads_are_the_ones_we_read() -> None:
    options = connection_options(
        Settings(environment="test"),
        environ={
            "TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233",
            "TEMPORAL_NAMESPACE": "ns.acct",
            "TEMPORAL_API_KEY": "secret",
        },
    )
    # Our Settings read TEMPORAL_ADDRESS from this process's environment, which is not the
    # one given here: the profile's (here: the variables') address and namespace apply.
    assert options["target_host"] == "ns.acct.tmprl.cloud:7233"
    assert options["namespace"] == "ns.acct"
    assert options["api_key"] == "secret" and options["tls"] is True  # an API key means TLS


def test_a_profile_applies_unless_an_address_was_given(tmp_path: Path) -> None:
    env = profile_env(tmp_path)
    options = connection_options(Settings(environment="test"), environ=env)
    assert options["target_host"] == "temporal.example:7233"
    assert options["namespace"] == "refunds"
    assert options["api_key"] == "from-the-profile"
    assert options["tls"].domain == "temporal.example"

    given = Settings(environment="test", temporal_address="10.0.0.5:7233")
    assert connection_options(given, environ=env)["target_host"] == "10.0.0.5:7233"
    # An empty variable is "not set": it does not blank the profile out.
    blank = connection_options(
        Settings(environment="test"),
        environ={**env, "TEMPORAL_ADDRESS": "", "TEMPORAL_API_KEY": ""},
    )
    assert blank["target_host"] == "temporal.example:7233"
    assert blank["api_key"] == "from-the-profile"


def test_a_configuration_it_cannot_read_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "broken.toml"
    toml.write_text("[profile.production\naddress = ", encoding="utf-8")
    with pytest.raises(TemporalUnavailable) as err:
        connection_options(
            Settings(environment="test"),
            environ={"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "production"},
        )
    line = cannot_start(err.value)
    assert line is not None and line.startswith("Temporal client configuration:")
    assert "\n" not in line

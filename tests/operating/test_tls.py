"""Temporal over TLS for real: nginx terminates TLS in front of the dev server with
certificates of a CA made here (tests/harness/tls.py). The worker connects with a client
certificate (mTLS), the API with an API key from a temporal.toml profile, `refundctl stuck`
like the worker; a refund goes through end to end. A wrong key, an expired or foreign
certificate, or no cluster at all ends each process with one line and exit code 2."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config.problems import EXIT_CANNOT_START
from refundctl.devserver import PROJECT_ROOT
from refundctl.procs import ChildProcess, free_port, log_sink, refundctl_argv
from refundctl.ready import wait_for_http
from tests.harness.tls import Authority, TlsFrontends, nginx_binary, tls_frontends
from tests.operating import support
from tests.system import System, auth, card_key_order, unique

pytestmark = pytest.mark.integration

TASK_QUEUE = "refunds-tls"
API_KEY = "tmprl-test-api-key"


@dataclass
class Tls:
    fronts: TlsFrontends
    ca: Authority
    tmp: Path


@pytest.fixture(scope="module")
async def tls(system: System, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tls]:
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: .ci/run installs nginx-light for the TLS tests")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    tmp = tmp_path_factory.mktemp("tls")
    ca = Authority(tmp)
    async with tls_frontends(
        tmp, upstream=system.settings.temporal_address, ca=ca, api_key=API_KEY
    ) as fronts:
        yield Tls(fronts, ca, tmp)


def service_env(system: System, **extra: str) -> dict[str, str]:
    return support.service_env(system.settings, TASK_QUEUE=TASK_QUEUE, **extra)


def mtls_env(t: Tls, client_name: str = "kami worker", **kw: bool) -> dict[str, str]:
    client = t.ca.issue(client_name, server=False, **kw)
    return {
        "TEMPORAL_ADDRESS": t.fronts.mtls,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(t.ca.cert_path),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
    }


def profile_env(t: Tls, api_key: str = API_KEY) -> dict[str, str]:
    """A temporal.toml profile, as the `temporal` CLI would use it too."""
    toml = t.tmp / f"temporal-{unique('p')}.toml"
    toml.write_text(
        f"""
[profile.production]
address = "{t.fronts.api_key}"
namespace = "default"
api_key = "{api_key}"

[profile.production.tls]
server_ca_cert_path = "{t.ca.cert_path}"
server_name = "localhost"
""",
        encoding="utf-8",
    )
    return {"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "production"}


def process(name: str, argv: list[str], env: Mapping[str, str]) -> ChildProcess:
    return ChildProcess(name, argv, env=env, cwd=PROJECT_ROOT, output=log_sink(name))


async def test_the_worker_the_api_and_refundctl_reach_temporal_over_tls(
    system: System, tls: Tls
) -> None:
    api_port = free_port()
    worker = process("tls-worker", refundctl_argv("worker"), service_env(system, **mtls_env(tls)))
    api_env = service_env(
        system, PUBLIC_BASE_URL=f"http://127.0.0.1:{api_port}", **profile_env(tls)
    )
    api = process("tls-api", refundctl_argv("api", "--port", str(api_port)), api_env)
    async with worker, api:
        base = f"http://127.0.0.1:{api_port}"
        await wait_for_http(f"{base}/healthz", timeout_seconds=60, process=api)
        async with httpx.AsyncClient(timeout=10) as http:
            order = card_key_order()
            r = await http.post(f"{base}/v1/orders", json=order, headers=auth("platform"))
            assert r.status_code == 201, r.text
            r = await http.post(
                f"{base}/v1/refunds",
                json={
                    "order_id": order["order_id"],
                    "buyer_id": order["buyer_id"],
                    "reason": "invalid_key",
                },
                headers={**auth("platform"), "Idempotency-Key": unique("idem")},
            )
            assert r.status_code == 202, r.text
            refund_id = r.json()["refund_id"]
            body: dict[str, object] = {}
            for _ in range(300):
                body = (
                    await http.get(f"{base}/v1/refunds/{refund_id}", headers=auth("platform"))
                ).json()
                if body["status"] == "refunded":
                    break
                await asyncio.sleep(0.1)
            assert body["status"] == "refunded", body
        assert worker.running, "\n".join(worker.tail())

    # An operator command over mTLS too: it reports (0: nothing stuck, 1: something is).
    stuck = await asyncio.to_thread(
        subprocess.run,
        refundctl_argv("stuck", "--limit", "5"),
        capture_output=True,
        text=True,
        env={**os.environ, **service_env(system, **mtls_env(tls))},
        cwd=PROJECT_ROOT,
    )
    assert stuck.returncode in (0, 1), stuck.stderr


def foreign_client_env(t: Tls) -> dict[str, str]:
    rogue = Authority(t.tmp, "rogue CA").issue("rogue worker", server=False)
    return {
        **mtls_env(t),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(rogue.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(rogue.key),
    }


CASES: dict[str, tuple[Callable[[Tls], dict[str, str]], str]] = {
    "no cluster at the address": (
        lambda t: {"TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"},
        "cannot reach Temporal at",
    ),
    "a wrong API key": (lambda t: profile_env(t, api_key="not-the-key"), "refused our credentials"),
    "an expired server certificate": (
        lambda t: {
            "TEMPORAL_ADDRESS": t.fronts.expired,
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(t.ca.cert_path),
            "TEMPORAL_TLS_SERVER_NAME": "localhost",
        },
        "expired",
    ),
    "an expired client certificate": (
        lambda t: mtls_env(t, "old worker", expired=True),
        "our client certificate (TEMPORAL_TLS_CLIENT_CERT_*, CN=old worker) is valid from",
    ),
    "a client certificate of another CA": (foreign_client_env, "did not accept our client"),
    "a server certificate nobody vouched for": (
        lambda t: {"TEMPORAL_ADDRESS": t.fronts.api_key, "TEMPORAL_API_KEY": API_KEY},
        "TLS",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["worker", "api"])
async def test_a_bad_connection_ends_the_process_with_one_line(
    system: System, tls: Tls, case: str, command: str
) -> None:
    make_env, words = CASES[case]
    env = {**os.environ, **service_env(system, **make_env(tls))}
    argv = refundctl_argv(command, *(["--port", str(free_port())] if command == "api" else []))
    done = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120
    )
    assert done.returncode == EXIT_CANNOT_START, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"refundctl {command}: "), done.stderr
    assert words in last, last
    assert "(namespace default)" in last, last

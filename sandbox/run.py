"""`refundctl sandbox`: the sandbox peers in one process, one asyncio loop: the supplier,
Alipay, WeChat Pay, the platform's webhook receiver, Aliyun SMS and an SMTP sink.

The dev launcher and the test harness use `serve_sandboxes` / `running_sandboxes` instead of the
CLI so they can run the peers in-process (any port, including 0 for a free one) and learn the
URLs once every server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from fastapi import FastAPI

from config.settings import SANDBOX_WECHAT_PUBLIC_KEY_ID, VAR_DIR, Settings, get_settings
from domain.buyer_messages import TEMPLATES
from peers.from_settings import sms_template_codes
from peers.signing import (
    SANDBOX_KEY_FILES,
    SANDBOX_WECHAT_CERT_FILE,
    ensure_sandbox_keys,
    load_private_key,
    load_public_key,
)
from sandbox.alipay import create_alipay_app
from sandbox.mail import MailSink, create_mail_app, serve_smtp
from sandbox.platform import create_platform_app
from sandbox.sms import create_sms_app
from sandbox.supplier import create_supplier_app
from sandbox.wechat_platform import NotificationSigning, SandboxPlatformKeys
from sandbox.wechatpay import create_wechat_app

__all__ = [
    "SandboxConfig",
    "SandboxURLs",
    "add_arguments",
    "build_sandbox_apps",
    "run",
    "running_sandboxes",
    "sandbox_wechat_keys",
    "serve_sandboxes",
]

logger = logging.getLogger(__name__)

PLATFORM_WEBHOOK_PATH = "/webhooks/refunds"


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    supplier_port: int = 8101  # 0 picks a free port
    alipay_port: int = 8102
    wechat_port: int = 8103
    platform_port: int = 8104
    sms_port: int = 8105
    mail_port: int = 8106  # the SMTP sink's control surface (/sandbox/messages)
    smtp_port: int = 8025  # the SMTP sink itself
    keys_dir: Path = field(default_factory=lambda: VAR_DIR / "keys")
    settle_after: float = 2.0  # seconds until a "processing" refund succeeds
    settle_after_queries: int | None = 3  # ... or the k-th query, whichever comes first
    fault_delay: float = 15.0  # how long a "timeout" fault hangs (beyond the client timeout)
    notify_retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0)
    # How the WeChat sandbox signs notifications; "either" plays a certificate -> public key
    # migration (each one signed with one or the other at random).
    wechat_notification_signing: NotificationSigning = "request"
    log_level: str = "warning"

    @classmethod
    def on_free_ports(cls, keys_dir: Path, **options: Any) -> SandboxConfig:
        """Every peer on a free port (a throwaway stack: tests, the bench, the chaos run),
        so a peer added to the sandbox is one field here, not an edit at every caller."""
        ports: dict[str, Any] = {f.name: 0 for f in fields(cls) if f.name.endswith("_port")}
        return replace(cls(keys_dir=keys_dir, **options), **ports)


@dataclass(frozen=True)
class SandboxURLs:
    supplier: str  # base URL: settings.supplier_url
    alipay: str  # the gateway endpoint: settings.alipay_url (ends in /gateway.do)
    wechat: str  # base URL: settings.wechat_url
    platform: str  # base URL of the platform stand-in
    sms: str = ""  # the SendSms endpoint: settings.sms_url
    mail: str = ""  # base URL of the SMTP sink's control surface
    smtp: str = ""  # host:port of the SMTP sink: settings.smtp_host, smtp_port

    @property
    def platform_webhook(self) -> str:
        """What to put in settings.platform_webhook_url."""
        return self.platform + PLATFORM_WEBHOOK_PATH

    def lines(self) -> list[str]:
        return [
            f"sandbox supplier       {self.supplier}",
            f"sandbox alipay         {self.alipay}",
            f"sandbox wechat pay     {self.wechat}",
            f"sandbox platform hook  {self.platform_webhook}",
            f"sandbox aliyun sms     {self.sms}",
            f"sandbox smtp sink      smtp://{self.smtp} (messages: {self.mail}/sandbox/messages)",
        ]


def sandbox_wechat_keys(
    keys_dir: Path,
    settings: Settings,
    *,
    notification_signing: NotificationSigning = "request",
) -> SandboxPlatformKeys:
    """The WeChat sandbox's platform certificate and public key, from the dev key directory
    (created by `ensure_sandbox_keys`); the public key's id is the one the service is told."""
    certificate = x509.load_pem_x509_certificate((keys_dir / SANDBOX_WECHAT_CERT_FILE).read_bytes())
    return SandboxPlatformKeys(
        [(certificate, load_private_key(keys_dir / SANDBOX_KEY_FILES["wechat_platform"][0]))],
        (
            settings.wechat_public_key_id or SANDBOX_WECHAT_PUBLIC_KEY_ID,
            load_private_key(keys_dir / SANDBOX_KEY_FILES["wechat_pubkey"][0]),
        ),
        notification_signing=notification_signing,
    )


def build_sandbox_apps(
    config: SandboxConfig, settings: Settings | None = None
) -> dict[str, FastAPI]:
    """The apps wired to the same secrets and keys the service uses (creating dev keys). The
    mail app's `state.sink` is the SMTP sink `serve_sandboxes` serves beside it."""
    settings = settings or get_settings()
    ensure_sandbox_keys(config.keys_dir)

    def key_path(role: str, half: int) -> Path:
        return config.keys_dir / SANDBOX_KEY_FILES[role][half]

    return {
        "supplier": create_supplier_app(
            api_key=settings.supplier_api_key,
            secret=settings.supplier_secret,
            fault_delay=config.fault_delay,
        ),
        "alipay": create_alipay_app(
            app_id=settings.alipay_app_id,
            app_public_key=load_public_key(key_path("alipay_app", 1)),
            platform_private_key=load_private_key(key_path("alipay_platform", 0)),
            settle_after=config.settle_after,
            settle_after_queries=config.settle_after_queries,
            fault_delay=config.fault_delay,
        ),
        "wechat": create_wechat_app(
            mchid=settings.wechat_mchid,
            merchant_serial_no=settings.wechat_serial_no,
            merchant_public_key=load_public_key(key_path("wechat_merchant", 1)),
            platform_keys=sandbox_wechat_keys(
                config.keys_dir,
                settings,
                notification_signing=config.wechat_notification_signing,
            ),
            apiv3_key=settings.wechat_apiv3_key,
            settle_after=config.settle_after,
            settle_after_queries=config.settle_after_queries,
            fault_delay=config.fault_delay,
            notify_retry_delays=config.notify_retry_delays,
        ),
        "platform": create_platform_app(secret=settings.platform_webhook_secret),
        "sms": create_sms_app(
            access_key_id=settings.sms_access_key_id,
            access_key_secret=settings.sms_access_key_secret,
            templates={
                code: TEMPLATES[key].sms.text for key, code in sms_template_codes(settings).items()
            },
            fault_delay=config.fault_delay,
        ),
        "mail": create_mail_app(MailSink(fault_delay=config.fault_delay)),
    }


class _SandboxServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner: four servers share one process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _serve(name: str, server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind; one sandbox must not take down the
        # loop it shares with the others (or with a test session).
        raise RuntimeError(f"sandbox {name} did not start (port in use?)") from exc


def _bound_port(server: uvicorn.Server, fallback: int) -> int:
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    return fallback


async def serve_sandboxes(
    config: SandboxConfig | None = None,
    *,
    settings: Settings | None = None,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[SandboxURLs], None] | None = None,
) -> None:
    """Serve the sandboxes until cancelled, then shut them down cleanly.

    `ready` is set (and `on_ready` called with the URLs) once all of them listen.
    """
    config = config or SandboxConfig()
    apps = build_sandbox_apps(config, settings)
    ports = {
        "supplier": config.supplier_port,
        "alipay": config.alipay_port,
        "wechat": config.wechat_port,
        "platform": config.platform_port,
        "sms": config.sms_port,
        "mail": config.mail_port,
    }
    smtp = await serve_smtp(apps["mail"].state.sink, config.host, config.smtp_port)
    servers = {
        name: _SandboxServer(
            uvicorn.Config(
                app,
                host=config.host,
                port=ports[name],
                log_level=config.log_level,
                lifespan="on",
                # A "timeout" fault may be mid-sleep: do not let it hold shutdown hostage.
                timeout_graceful_shutdown=1,
            )
        )
        for name, app in apps.items()
    }
    tasks = {name: asyncio.create_task(_serve(name, server)) for name, server in servers.items()}
    try:
        while not all(server.started for server in servers.values()):
            for name, task in tasks.items():
                if task.done():
                    task.result()  # raises the startup error
                    raise RuntimeError(f"sandbox {name} stopped while starting")
            await asyncio.sleep(0.02)
        base = {
            name: f"http://{config.host}:{_bound_port(server, ports[name])}"
            for name, server in servers.items()
        }
        urls = SandboxURLs(
            supplier=base["supplier"],
            alipay=base["alipay"] + "/gateway.do",
            wechat=base["wechat"],
            platform=base["platform"],
            sms=base["sms"] + "/",
            mail=base["mail"],
            smtp=f"{config.host}:{smtp.sockets[0].getsockname()[1]}",
        )
        if on_ready is not None:
            on_ready(urls)
        if ready is not None:
            ready.set()
        # asyncio.wait (unlike gather) leaves the servers running when we are cancelled, so
        # the `finally` below can stop them gracefully.
        await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        smtp.close()
        for server in servers.values():
            server.should_exit = True
        await asyncio.gather(*tasks.values(), return_exceptions=True)


@contextlib.asynccontextmanager
async def running_sandboxes(
    config: SandboxConfig | None = None, *, settings: Settings | None = None
) -> AsyncIterator[SandboxURLs]:
    """`async with running_sandboxes(SandboxConfig(supplier_port=0, ...)) as urls:` for tests."""
    found: list[SandboxURLs] = []
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve_sandboxes(config, settings=settings, ready=ready, on_ready=found.append)
    )
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        ready_wait.cancel()
        await task  # raises the startup error
        raise RuntimeError("sandboxes stopped before they were ready")
    try:
        yield found[0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SandboxConfig()
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--supplier-port", type=int, default=defaults.supplier_port)
    parser.add_argument("--alipay-port", type=int, default=defaults.alipay_port)
    parser.add_argument("--wechat-port", type=int, default=defaults.wechat_port)
    parser.add_argument("--platform-port", type=int, default=defaults.platform_port)
    parser.add_argument("--sms-port", type=int, default=defaults.sms_port)
    parser.add_argument("--mail-port", type=int, default=defaults.mail_port)
    parser.add_argument("--smtp-port", type=int, default=defaults.smtp_port)
    parser.add_argument(
        "--keys-dir",
        type=Path,
        default=defaults.keys_dir,
        help="where the dev RSA keypairs live (created if missing)",
    )
    parser.add_argument(
        "--settle-after",
        type=float,
        default=defaults.settle_after,
        help="seconds until a 'processing' refund succeeds",
    )
    parser.add_argument(
        "--fault-delay",
        type=float,
        default=defaults.fault_delay,
        help="seconds a 'timeout' fault hangs before answering",
    )
    parser.add_argument(
        "--wechat-notification-signing",
        choices=["request", "certificate", "public_key", "either"],
        default=defaults.wechat_notification_signing,
        help="how WeChat notifications are signed; 'either' plays a certificate to public "
        "key migration",
    )
    parser.add_argument("--log-level", default=defaults.log_level)


def run(args: argparse.Namespace) -> int:
    config = SandboxConfig(
        host=args.host,
        supplier_port=args.supplier_port,
        alipay_port=args.alipay_port,
        wechat_port=args.wechat_port,
        platform_port=args.platform_port,
        sms_port=args.sms_port,
        mail_port=args.mail_port,
        smtp_port=args.smtp_port,
        keys_dir=args.keys_dir,
        settle_after=args.settle_after,
        fault_delay=args.fault_delay,
        wechat_notification_signing=args.wechat_notification_signing,
        log_level=args.log_level,
    )
    logging.basicConfig(level=args.log_level.upper())

    def announce(urls: SandboxURLs) -> None:
        print("\n".join(urls.lines()), flush=True)  # CLI output for the operator, not a log

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(serve_sandboxes(config, on_ready=announce))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not serving.done():
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    try:
        asyncio.run(main())
    except RuntimeError as exc:
        logger.error("%s", exc)
        return 1
    return 0

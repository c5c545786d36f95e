"""`start_stack(spec)`: run what a `StackSpec` describes, in dependency order, until the block ends.

```
async with start_stack(StackSpec(settings=..., temporal=DevServerSpec(), ...)) as stack:
    stack.api_url, stack.settings, stack.sandboxes      # where everything is
    await stack.service("worker").kill()                # SIGKILL, as a crash
    await stack.supervise()                             # watch (and restart) until one dies
```

Start order is the order of dependencies: database schema, Temporal, the sandbox peers the
worker talks to, the workers, then the APIs that start workflows; each must pass its readiness
check before the next starts. The block's end stops them in reverse, so nothing is left
talking to a peer that is already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from refundctl.devserver import (
    PROJECT_ROOT,
    DevServerError,
    compose_namespaces,
    compose_search_attributes,
    dev_server_args,
    wait_until_ready,
)
from refundctl.procs import (
    ChildProcess,
    LogFile,
    OutputSink,
    fan_out,
    free_port,
    free_ports,
    log_sink,
    port_is_open,
    prefixed_writer,
    refundctl_argv,
)
from refundctl.ready import wait_for_http, wait_for_poller, wait_for_port
from refundctl.stack import inprocess, signals
from refundctl.stack.services import ProcessService, Service
from refundctl.stack.spec import (
    LOCAL,
    ApiSpec,
    DevServerSpec,
    SandboxSpec,
    StackSpec,
    WorkerSpec,
)
from refundctl.stack.supervise import supervise

if TYPE_CHECKING:
    from config.settings import Settings
    from sandbox.run import SandboxURLs

__all__ = ["Stack", "settings_env", "start_stack"]

logger = logging.getLogger("refundctl.stack")
SANDBOX_PEERS = ("supplier", "alipay", "wechat", "platform", "sms", "mail", "smtp")


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable `Settings` reads (prefix-free, upper case), so
    a subprocess sees exactly these settings whatever the launcher's own environment holds."""
    env = {
        name.upper(): str(value)
        for name, value in settings.model_dump().items()
        if isinstance(value, str | int | float | bool)
    }
    env["PYTHONUNBUFFERED"] = "1"  # children print through our pipes; keep interleaving honest
    return env


class Stack:
    """A running stack: where its services listen, the settings they run with, the services."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self.settings: Settings = spec.settings
        self.services: dict[str, Service] = {}
        self.logs: dict[str, LogFile] = {}
        self.temporal_address = ""
        self.temporal_ui_url: str | None = None
        self.sandboxes: SandboxURLs | None = None
        self.api_urls: dict[str, str] = {}
        self._ports: dict[tuple[str, str], int] = {}
        # Set by a second Ctrl-C: stop waiting politely and SIGKILL what is left.
        self.hurry = asyncio.Event()

    # --- what runs where -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return next(iter(self.api_urls.values()))

    def service(self, name: str) -> Service:
        return self.services[name]

    def process(self, name: str) -> ProcessService:
        service = self.services[name]
        if not isinstance(service, ProcessService):
            raise TypeError(f"{name} runs in this process, not as a subprocess")
        return service

    def pids(self) -> dict[str, int | None]:
        """Subprocesses by name (for CPU accounting, profilers)."""
        return {n: s.pid for n, s in self.services.items() if isinstance(s, ProcessService)}

    # --- starting --------------------------------------------------------------------------

    def _output(self, name: str) -> OutputSink:
        logs = self.spec.logs
        sinks: list[OutputSink] = []
        if logs.dir is not None:
            self.logs[name] = LogFile(logs.dir / f"{name}.log")
            sinks.append(self.logs[name])
        if logs.echo:
            sinks.append(prefixed_writer(name))
        if logs.to_logging:
            sinks.append(log_sink(name))
        return fan_out(*sinks)

    async def _add(self, service: Service) -> None:
        """Register (so even a half-started service is stopped), start, wait until ready."""
        self.services[service.name] = service
        await service.start()
        await service.wait_ready()

    async def _start(self) -> None:
        spec = self.spec
        if spec.sandboxes is not None:
            self.settings = await _with_sandbox_keys(self.settings, spec.sandboxes)
        if spec.migrate:
            from store.migrate import upgrade

            # Alembic's env runs its own event loop: keep it off this one.
            await asyncio.to_thread(upgrade, self.settings.database_url)
        if isinstance(spec.temporal, DevServerSpec):
            await self._start_temporal(spec.temporal)
        else:
            self.temporal_address = spec.temporal.address
        self.settings = self.settings.model_copy(update={"temporal_address": self.temporal_address})
        self._ports = _unset_ports_taken_at_once(spec)
        api_ports = {api.name: api.port or self._ports[(api.host, api.name)] for api in spec.apis}
        self.api_urls = {a.name: f"http://{a.host}:{api_ports[a.name]}" for a in spec.apis}
        if spec.sandboxes is not None:
            await self._start_sandboxes(spec.sandboxes)
        if self.api_urls:
            self.settings = self.settings.model_copy(update={"public_base_url": self.api_url})
        for worker in spec.workers:
            await self._start_worker(worker)
        for api in spec.apis:
            await self._start_api(api, api_ports[api.name])

    async def _start_temporal(self, temporal: DevServerSpec) -> None:
        port = temporal.port or free_port(LOCAL)
        if port_is_open(LOCAL, port):
            raise DevServerError(
                f"port {port} is already in use (another Temporal server?); stop it or pick "
                "another port"
            )
        ui_port = None if temporal.headless else (temporal.ui_port or port + 1000)
        if ui_port is not None and port_is_open(LOCAL, ui_port):
            raise DevServerError(f"UI port {ui_port} is already in use; pick another")
        if temporal.db_file is not None:
            temporal.db_file.parent.mkdir(parents=True, exist_ok=True)
        argv = dev_server_args(
            port=port,
            ui_port=ui_port,
            db_file=temporal.db_file,
            headless=temporal.headless,
            ui_codec_endpoint=temporal.ui_codec_endpoint,
        )
        self.temporal_address = f"{LOCAL}:{port}"
        self.temporal_ui_url = f"http://{LOCAL}:{ui_port}" if ui_port is not None else None
        attributes = list(compose_search_attributes())
        namespaces = compose_namespaces()
        address = self.temporal_address

        async def ready(child: ChildProcess) -> None:
            # The port opens before the namespaces and search attributes are registered; a
            # worker that started a workflow in that window would fail.
            for namespace in namespaces:
                await wait_until_ready(
                    address,
                    namespace=namespace,
                    search_attributes=attributes,
                    timeout_seconds=temporal.startup_timeout_seconds,
                    process=child,
                )

        child = ChildProcess("temporal", argv, output=self._output("temporal"))
        await self._add(ProcessService(child, ready))

    async def _start_sandboxes(self, sandboxes: SandboxSpec) -> None:
        from sandbox.run import SandboxConfig, SandboxURLs

        cfg = sandboxes.config
        if sandboxes.mode == "inprocess":
            found: list[SandboxURLs] = []
            await self._add(inprocess.sandbox_service(cfg, self.settings, found))
            urls = found[0]
        else:
            defaults = SandboxConfig()
            if (cfg.notify_retry_delays, cfg.settle_after_queries) != (
                defaults.notify_retry_delays,
                defaults.settle_after_queries,
            ):
                raise ValueError("`refundctl sandbox` takes no notify delays or settle queries")
            ports = {
                peer: getattr(cfg, f"{peer}_port") or self._ports[(cfg.host, peer)]
                for peer in SANDBOX_PEERS
            }
            argv = refundctl_argv(
                "sandbox",
                f"--host={cfg.host}",
                *(f"--{peer}-port={port}" for peer, port in ports.items()),
                f"--keys-dir={cfg.keys_dir.resolve()}",
                f"--settle-after={cfg.settle_after}",
                f"--fault-delay={cfg.fault_delay}",
                f"--wechat-notification-signing={cfg.wechat_notification_signing}",
                f"--log-level={cfg.log_level}",
            )
            child = ChildProcess(
                "sandbox",
                argv,
                env=settings_env(self.settings),
                cwd=PROJECT_ROOT,
                output=self._output("sandbox"),
            )

            async def ready(child: ChildProcess) -> None:
                for port in ports.values():
                    await wait_for_port(
                        cfg.host,
                        port,
                        timeout_seconds=self.spec.ready_timeout_seconds,
                        process=child,
                    )

            await self._add(ProcessService(child, ready))
            base = {peer: f"http://{cfg.host}:{port}" for peer, port in ports.items()}
            urls = SandboxURLs(
                supplier=base["supplier"],
                alipay=base["alipay"] + "/gateway.do",
                wechat=base["wechat"],
                platform=base["platform"],
                sms=base["sms"] + "/",
                mail=base["mail"],
                smtp=f"{cfg.host}:{ports['smtp']}",
            )
        self.sandboxes = urls
        update: dict[str, object] = {
            "supplier_url": urls.supplier,
            "supplier_urls": "",
            "alipay_url": urls.alipay,
            "wechat_url": urls.wechat,
        }
        if sandboxes.buyer_messages:
            update["sms_url"] = urls.sms
            update["smtp_host"], _, port = urls.smtp.rpartition(":")
            update["smtp_port"] = int(port)
        if sandboxes.platform_webhook:
            update["platform_webhook_url"] = urls.platform_webhook
        self.settings = self.settings.model_copy(update=update)

    async def _start_worker(self, worker: WorkerSpec) -> None:
        queue = worker.task_queue or self.settings.task_queue
        settings = self.settings.model_copy(update={"task_queue": queue})
        timeout = self.spec.ready_timeout_seconds
        if worker.mode == "inprocess":
            await self._add(
                inprocess.worker_service(
                    worker.name,
                    settings,
                    task_queue=queue,
                    serve=worker.serve,
                    ready_timeout_seconds=timeout,
                    grace_seconds=worker.grace_seconds,
                )
            )
            return
        argv = (
            worker.command(settings)
            if worker.command
            else [*refundctl_argv("worker"), *worker.args]
        )

        async def ready(child: ChildProcess) -> None:
            assert child.pid is not None
            await wait_for_poller(
                settings.temporal_address,
                pid=child.pid,
                since=child.started_at or 0.0,
                task_queue=queue,
                namespace=settings.temporal_namespace,
                timeout_seconds=timeout,
                process=child,
            )

        child = ChildProcess(
            worker.name,
            argv,
            env={**settings_env(settings), **worker.env},
            cwd=PROJECT_ROOT,
            output=self._output(worker.name),
            grace_seconds=worker.grace_seconds,
        )
        await self._add(ProcessService(child, ready))

    async def _start_api(self, api: ApiSpec, port: int) -> None:
        if api.mode == "inprocess":
            await self._add(inprocess.api_service(api, self.settings, port))
            return
        url = self.api_urls[api.name]
        timeout = self.spec.ready_timeout_seconds

        async def ready(child: ChildProcess) -> None:
            await wait_for_http(f"{url}/healthz", timeout_seconds=timeout, process=child)

        child = ChildProcess(
            api.name,
            refundctl_argv("api", "--host", api.host, "--port", str(port)),
            env=settings_env(self.settings),
            cwd=PROJECT_ROOT,
            output=self._output(api.name),
            grace_seconds=api.grace_seconds,
        )
        await self._add(ProcessService(child, ready))

    # --- watching ---------------------------------------------------------------------------

    async def supervise(self, *, notice: Callable[[str], None] | None = None) -> Service:
        """Watch the services until one ends and is not restarted; return that one.
        With the spec's `restart` policy crashed subprocesses come back (see `supervise.py`)."""
        return await supervise(self, self.spec.restart, notice or logger.warning)

    # --- stopping --------------------------------------------------------------------------

    async def _stop_all(self) -> None:
        # Reverse order, one at a time: a consumer stops before what it consumes.
        for service in reversed(list(self.services.values())):
            try:
                await service.stop(hurry=self.hurry)
            except Exception:
                logger.exception("stopping %s failed", service.name)
        for log in self.logs.values():
            log.close()


def _unset_ports_taken_at_once(spec: StackSpec) -> dict[tuple[str, str], int]:
    """A free port for every API and subprocess sandbox peer the spec leaves at 0, keyed by
    (host, name), taken in one `free_ports` call per host: ports picked one by one may repeat
    (each probe socket is closed before the next binds), and the service that loses the race
    would fail to start. In-process sandboxes bind port 0 themselves."""
    wanted: dict[str, list[str]] = {}
    for api in spec.apis:
        if not api.port:
            wanted.setdefault(api.host, []).append(api.name)
    sandboxes = spec.sandboxes
    if sandboxes is not None and sandboxes.mode != "inprocess":
        cfg = sandboxes.config
        for peer in SANDBOX_PEERS:
            if not getattr(cfg, f"{peer}_port"):
                wanted.setdefault(cfg.host, []).append(peer)
    return {
        (host, name): port
        for host, names in wanted.items()
        for name, port in zip(names, free_ports(len(names), host), strict=True)
    }


async def _with_sandbox_keys(settings: Settings, sandboxes: SandboxSpec) -> Settings:
    """The dev signing keys in the sandboxes' key directory (made if missing), and the
    service's key paths pointed at them."""
    from peers.signing import SANDBOX_KEY_FILES, SANDBOX_WECHAT_CERT_FILE, ensure_sandbox_keys

    keys = sandboxes.config.keys_dir.resolve()
    await asyncio.to_thread(ensure_sandbox_keys, keys)
    return settings.model_copy(
        update={
            "alipay_private_key_path": str(keys / SANDBOX_KEY_FILES["alipay_app"][0]),
            "alipay_public_key_path": str(keys / SANDBOX_KEY_FILES["alipay_platform"][1]),
            "wechat_private_key_path": str(keys / SANDBOX_KEY_FILES["wechat_merchant"][0]),
            "wechat_platform_certs": str(keys / SANDBOX_WECHAT_CERT_FILE),
            "wechat_public_key_path": str(keys / SANDBOX_KEY_FILES["wechat_pubkey"][1]),
        }
    )


@contextlib.asynccontextmanager
async def start_stack(spec: StackSpec) -> AsyncIterator[Stack]:
    """Start everything `spec` describes; ready on entry, stopped in reverse order on exit."""
    stack = Stack(spec)
    signals.register(stack)
    try:
        await stack._start()
        yield stack
    finally:
        try:
            await stack._stop_all()
        finally:
            signals.unregister(stack)

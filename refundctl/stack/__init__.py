"""The one way to start kami-refunds' processes: Temporal, sandboxes, workers, APIs.

`refundctl dev`, `refundctl temporal`, `refundctl bench`, `refundctl chaos` and the test fixtures
describe what they want as a `StackSpec` and run it with `start_stack`; see `spec.py` for the
description and `launch.py` for the order, readiness checks, restarts and logs.
"""

from refundctl.stack.inprocess import serve_api
from refundctl.stack.launch import Stack, settings_env, start_stack
from refundctl.stack.services import ProcessService, Service, ServiceStopped, TaskService
from refundctl.stack.signals import run_once_until_signalled, run_until_signalled
from refundctl.stack.spec import (
    ApiSpec,
    DevServerSpec,
    ExternalTemporal,
    LogSpec,
    Mode,
    RestartPolicy,
    SandboxSpec,
    StackSpec,
    WorkerSpec,
)

__all__ = [
    "ApiSpec",
    "DevServerSpec",
    "ExternalTemporal",
    "LogSpec",
    "Mode",
    "ProcessService",
    "RestartPolicy",
    "SandboxSpec",
    "Service",
    "ServiceStopped",
    "Stack",
    "StackSpec",
    "TaskService",
    "WorkerSpec",
    "run_once_until_signalled",
    "run_until_signalled",
    "serve_api",
    "settings_env",
    "start_stack",
]

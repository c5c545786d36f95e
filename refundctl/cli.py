"""`refundctl`: every process and operator task of the service behind one command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

# Subcommand -> (module, help). Each module has `add_arguments(parser)` and `run(args) -> int`;
# modules are imported only when their command runs, so `refundctl api` never loads the worker.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("refundctl.dev", "run the whole system locally: Temporal, sandboxes, worker, API"),
    "temporal": ("refundctl.devserver", "run only the Temporal dev server from temporal-dev.yml"),
    "worker": ("workers.main", "run the refund worker"),
    "api": ("api.main", "run the HTTP API"),
    "sandbox": ("sandbox.run", "run the sandbox peers (supplier, gateways, platform webhook)"),
    "migrate": ("store.migrate", "bring the database schema up to date"),
    "seed": ("refundctl.seed", "record the demo shop's orders"),
    "bench": ("bench.main", "measure automatic refunds against an empty workflow"),
    "chaos": ("refundctl.chaos.run", "refunds while the worker is killed at random; checks"),
    "explain": ("refundctl.explain", "replay the decision for an order without creating a refund"),
    "incident": ("refundctl.incident", "declare and run an incident: many orders refunded first"),
    "reconcile": ("refundctl.reconcile", "compare a day's payouts with the gateways' records"),
    "audit": ("refundctl.audit", "verify the hash-chained audit log"),
    "stuck": ("refundctl.stuck", "list stuck refunds, why, and the command that fixes each"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """All subcommands for --help; only `command`'s module is imported for its arguments,
    so `refundctl api` never loads the worker (nor the worker the API)."""
    parser = argparse.ArgumentParser(prog="refundctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module_name)
        if name == command:
            add: Callable[[argparse.ArgumentParser], None] | None = getattr(
                importlib.import_module(module_name), "add_arguments", None
            )
            if add is not None:
                add(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        result: int = module.run(args)
    except Exception as err:  # a startup failure is one line; anything else is a bug
        from config.problems import EXIT_CANNOT_START, cannot_start

        line = cannot_start(err)
        if line is None:
            raise
        print(f"refundctl {args.command}: {line}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Not a normal exit: the Temporal SDK's core threads may still be winding down a
        # failed connection and call into an interpreter that is finalizing, which aborts
        # the process (SIGABRT) after our line. Nothing is left to clean up here.
        os._exit(EXIT_CANNOT_START)
    return result


if __name__ == "__main__":
    sys.exit(main())

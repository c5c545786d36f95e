"""The crash points, as the activities and the crash tests import them. They live in
`config.crashpoints` so that `store/` can fire one inside a transaction, at the exact
statement where the crash tests need the worker to die."""

from config.crashpoints import ARMED, CRASH_EXIT_CODE, crashpoint, marker

__all__ = ["ARMED", "CRASH_EXIT_CODE", "crashpoint", "marker"]

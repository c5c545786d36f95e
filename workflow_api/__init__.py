"""The refund workflow as its callers see it: what it is called, what it takes, how it is
found and started — without importing the workflow class or its activities.

- `messages`: the workflow's start argument, signal bodies and the activities' messages;
- `surface`: its type name, id scheme and search attributes (CONTRACT "Temporal surface");
- `starter`: starting a stored refund's workflow, for the API and the worker's sweeper.

The API imports this package, never `workers/` or `activities/` (an import contract in
pyproject.toml holds it to that).
"""

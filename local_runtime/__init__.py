"""Runs the real state machine on one machine: moto + local Spark + PostgreSQL.

`python -m local_runtime run|demo|warehouse|runs|check`. The product never imports this package.
The run ledger outlives each process in `.local/ledger.json`, restored at start and guarded by
a lock on `.local/ledger.lock` (local_runtime.state); passwords are redacted in everything it
shows (local_runtime.redaction).
"""

"""Runs the real state machine on one machine: moto + local Spark + PostgreSQL.

`python -m local_runtime run|demo|warehouse|runs|check`. The product never imports this package.
"""

"""`make verify-aws`: deploy a throwaway stack into a sandbox AWS account, run one sample day
through the real pipeline, check what it loaded and what it left running, and tear it down.

Never run by CI: it needs real credentials and costs a few cents. Every AWS call goes through a
boto3 client handed to the steps (moto in tests/unit/verify_aws) and every `sam` call through a
SamRunner (faked there), so the logic is tested without an account.
"""

from __future__ import annotations


class VerifyError(Exception):
    """A step could not do its work; the message says what was wrong."""


class Refusal(VerifyError):
    """Nothing was started: the environment is not safe or not complete enough to start (exit 2)."""

"""Step Functions task tokens: end a waitForTaskToken task (AwaitLoad) with its result.

SendTaskSuccess and SendTaskFailure answer TaskTimedOut when "the task token has either
expired or the task associated with the token has already been closed", and InvalidToken for a
token that is not valid (Step Functions API Reference, SendTaskSuccess). A completion event
delivered twice, or one that arrives after the wait ended another way, meets a closed token:
that is the end this module reports (False), not an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code

CLOSED = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")
MAX_CAUSE = 32768  # SendTaskFailure's cause is at most 32768 characters


class TaskTokens:
    """SendTaskSuccess / SendTaskFailure on a boto3 "stepfunctions" client."""

    def __init__(self, client: Any):
        self._client = client

    def _send(self, what: str, method: Any, **kwargs: Any) -> bool:
        try:
            method(**kwargs)
        except ClientError as e:
            if error_code(e) in CLOSED:
                return False
            raise domain_error(e, what) from e
        except BotoCoreError as e:
            raise domain_error(e, what) from e
        return True

    def succeed(self, token: str, output: Mapping[str, Any]) -> bool:
        """True when the task took `output`; False when its token was already closed."""
        return self._send("sending the task's success", self._client.send_task_success,
                          taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        """True when the task failed with `error`; False when its token was already closed."""
        return self._send("sending the task's failure", self._client.send_task_failure,
                          taskToken=token, error=error[:256], cause=cause[:MAX_CAUSE])

"""Lambda-side logic and AWS adapters shared by the functions (packaged in the common layer).

`domain_error` is the one place that turns a botocore ClientError into the few error names the
state machine's Retry/Catch match on, so every adapter classifies failures the same way.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from pipeline_core.errors import ConfigurationError, PipelineError, TransientError

# Codes that a retry with backoff may fix.
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "SlowDown",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalServerError",
    "InternalServerException", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "KMSThrottlingException", "TransactionConflictException",
    "ActiveStatementsExceededException", "ActiveSessionsExceededException",
    "DatabaseConnectionException", "QueryTimeoutException", "ExecuteStatementException",
    "BatchExecuteStatementException",
})


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def domain_error(e: Exception, what: str) -> PipelineError:
    """The domain exception for a failed AWS call; the caller raises it `from e`.

    Throttling, 5xx and network errors become TransientError (the ASL retries them); anything
    else (access denied, missing resource, validation) is a ConfigurationError a person must fix.
    """
    if isinstance(e, ClientError):
        code = error_code(e)
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(e.response.get("Error", {}).get("Message", "")) or str(e)
        if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TransientError(f"{what} failed ({code}): {message}")
        return ConfigurationError(f"{what} failed ({code}): {message}")
    if isinstance(e, ParamValidationError):  # our request is malformed: retrying cannot help
        return ConfigurationError(f"{what} failed: {e}")
    if isinstance(e, BotoCoreError):
        return TransientError(f"{what} failed: {e}")
    return ConfigurationError(f"{what} failed: {e}")

"""Lambda-side logic and AWS adapters shared by the functions (packaged in the common layer).

`domain_error` is the one place that turns a botocore ClientError into the few error names the
state machine's Retry/Catch match on, so every adapter classifies failures the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

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
# Codes that mean the function's role lacks a permission: the message says so.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def domain_error(e: Exception, what: str, *,
                 codes: Mapping[str, type[PipelineError]] | None = None) -> PipelineError:
    """The domain exception for a failed AWS call; the caller raises it `from e`.

    `codes` maps error codes that mean something to this caller to its own exception (e.g. a
    missing cluster -> ResourceGone); they win over the rules below. Throttling, 5xx and network
    errors become TransientError (the ASL retries them); anything else (access denied, missing
    resource, validation) is a ConfigurationError a person must fix.
    """
    if isinstance(e, ClientError):
        code = error_code(e)
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(e.response.get("Error", {}).get("Message", "")) or str(e)
        text = f"{what} failed ({code}): {message}"
        if codes and code in codes:
            return codes[code](text)
        if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TransientError(text)
        if code in ACCESS_DENIED_CODES:
            return ConfigurationError(f"{text}: the function's role lacks this permission")
        return ConfigurationError(text)
    if isinstance(e, ParamValidationError):  # our request is malformed: retrying cannot help
        return ConfigurationError(f"{what} failed: {e}")
    if isinstance(e, BotoCoreError):
        return TransientError(f"{what} failed: {e}")
    return ConfigurationError(f"{what} failed: {e}")


def aws_call(what: str, method: Callable[..., Any], *,
             codes: Mapping[str, type[PipelineError]] | None = None, **kwargs: Any) -> Any:
    """`method(**kwargs)`, its failures raised as domain errors (see `domain_error`)."""
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as e:
        raise domain_error(e, what, codes=codes) from e


def aws_pages(what: str, method: Callable[..., Any], items: str, token: str, *,
              response_field: str | None = None,
              codes: Mapping[str, type[PipelineError]] | None = None,
              **kwargs: Any) -> Iterator[Any]:
    """Every item under `items` of every page of a list call that pages by `token`
    (`Marker` for EMR, `nextToken` for EMR Serverless and Step Functions); `response_field`
    names the response's field when it differs (DynamoDB: LastEvaluatedKey -> ExclusiveStartKey)."""
    while True:
        page = aws_call(what, method, codes=codes, **kwargs)
        yield from page.get(items, [])
        following = page.get(response_field or token)
        if not following:
            return
        kwargs[token] = following

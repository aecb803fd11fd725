"""Every adapter classifies AWS errors through `pipeline_aws.domain_error`: each code a retry may
fix (whatever its HTTP status: KMSThrottlingException and RequestTimeoutException come back as
4xx) and every 5xx becomes TransientError, which the state machine retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from pipeline_aws import TRANSIENT_CODES, aws_call, domain_error
from pipeline_aws.alerts import Alert, AlertPublisher
from pipeline_aws.cleanup import ExecutionRuns
from pipeline_aws.cost.adapters import (
    EmrServerlessReader,
    ExecutionHistoryReader,
    SsmRateCardOverride,
)
from pipeline_aws.emr import ClusterInfo, EmrClusters, ResourceGone, ServerlessJobRuns
from pipeline_aws.ledger import RunLedger
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError
from tests.support.aws import BASE_ENV, LEDGER, REGION, TOPIC_ARN, execution_arn

# Written out (not read from TRANSIENT_CODES) so that dropping a code from the product fails here.
TRANSIENT = (
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "SlowDown",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalServerError",
    "InternalServerException", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "KMSThrottlingException", "TransactionConflictException",
    "ActiveStatementsExceededException", "ActiveSessionsExceededException",
    "DatabaseConnectionException", "QueryTimeoutException", "ExecuteStatementException",
    "BatchExecuteStatementException",
)
CLUSTER = ClusterInfo("j-1ABC", "run", "WAITING", {}, False, None, None)
EXECUTION = execution_arn("e-1")

# adapter call -> (service, the operation it makes, how to make it on a client)
CALLS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "RunLedger.get": ("dynamodb", "get_item", lambda c: RunLedger(_table(c)).get("r")),
    "RunLedger.create_run": ("dynamodb", "put_item",
                             lambda c: RunLedger(_table(c)).create_run({"run_id": "r"})),
    "RunLedger.update": ("dynamodb", "update_item",
                         lambda c: RunLedger(_table(c)).update("r", {"status": "FAILED"})),
    "RunLedger.close_run": ("dynamodb", "update_item", lambda c: RunLedger(_table(c)).close_run(
        "r", EXECUTION, "ABORTED", ended_at="2026-11-21T10:00:00Z")),
    "RunLedger.record_cost": ("dynamodb", "update_item", lambda c: RunLedger(
        _table(c)).record_cost("r", {}, {}, ended_at="x", execution_arn=EXECUTION)),
    "RunLedger.query_by_dataset": ("dynamodb", "query",
                                   lambda c: RunLedger(_table(c)).query_by_dataset("d")),
    "RunLedger.month_cost": ("dynamodb", "query",
                             lambda c: RunLedger(_table(c)).month_cost("d", "2026-11", "r")),
    "AlertPublisher.publish": ("sns", "publish", lambda c: AlertPublisher(c, TOPIC_ARN).publish(
        Alert(subject="s", title="t", fields={}))),
    "EmrClusters.cluster_ids": ("emr", "list_clusters",
                                lambda c: list(EmrClusters(c).cluster_ids())),
    "EmrClusters.describe": ("emr", "describe_cluster",
                             lambda c: EmrClusters(c).describe("j-1ABC")),
    "EmrClusters.step_activity": ("emr", "list_steps",
                                  lambda c: EmrClusters(c).step_activity("j-1ABC")),
    "EmrClusters.terminate": ("emr", "terminate_job_flows",
                              lambda c: EmrClusters(c).terminate(CLUSTER, False)),
    "EmrClusters.instances": ("emr", "list_instances",
                              lambda c: EmrClusters(c).instances("j-1ABC")),
    "ServerlessJobRuns.non_final_ids": ("emr-serverless", "list_job_runs", lambda c: list(
        ServerlessJobRuns(c, "app").non_final_ids())),
    "ServerlessJobRuns.get": ("emr-serverless", "get_job_run",
                              lambda c: ServerlessJobRuns(c, "app").get("run")),
    "ServerlessJobRuns.cancel": ("emr-serverless", "cancel_job_run",
                                 lambda c: ServerlessJobRuns(c, "app").cancel("run")),
    "ExecutionRuns.run_of": ("stepfunctions", "get_execution_history",
                             lambda c: ExecutionRuns(c).run_of(EXECUTION)),
    "EmrServerlessReader.job_run": ("emr-serverless", "get_job_run",
                                    lambda c: EmrServerlessReader(c).job_run("app", "run")),
    "EmrServerlessReader.architecture": ("emr-serverless", "get_application",
                                         lambda c: EmrServerlessReader(c).architecture("app")),
    "ExecutionHistoryReader.events": ("stepfunctions", "get_execution_history",
                                      lambda c: ExecutionHistoryReader(c).events(EXECUTION)),
    "SsmRateCardOverride.load": ("ssm", "get_parameter",
                                 lambda c: SsmRateCardOverride(c, "/p").load()),
}


def _table(client: Any) -> Any:
    """A Table resource whose calls go through `client` (the stubbed one)."""
    return boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).__class__(
        LEDGER, client=client)


_CLIENTS: dict[str, Any] = {}


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], tuple[Any, Stubber]]]:
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    stubbers: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        client = _CLIENTS.get(service) or boto3.client(service, region_name=REGION)
        _CLIENTS[service] = client
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return client, stubber

    yield make
    for stubber in stubbers:
        stubber.deactivate()


def test_the_listed_codes_are_the_products() -> None:
    assert frozenset(TRANSIENT) == TRANSIENT_CODES


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize(("code", "status"), [*((c, 400) for c in TRANSIENT),
                                              ("SomethingNew", 503)])
def test_transient_errors_become_transient_error_in_every_adapter(
        stubbed: Callable[[str], tuple[Any, Stubber]], call: str, code: str,
        status: int) -> None:
    service, operation, make_call = CALLS[call]
    client, stubber = stubbed(service)
    stubber.add_client_error(operation, service_error_code=code, http_status_code=status,
                             service_message="try again")

    with pytest.raises(TransientError, match=f"\\({code}\\): try again"):
        make_call(client)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_access_denied_is_a_configuration_error_that_names_the_role(
        stubbed: Callable[[str], tuple[Any, Stubber]], call: str) -> None:
    service, operation, make_call = CALLS[call]
    client, stubber = stubbed(service)
    stubber.add_client_error(operation, service_error_code="AccessDeniedException",
                             http_status_code=400, service_message="not authorized")

    with pytest.raises(ConfigurationError, match="role lacks this permission"):
        make_call(client)


def test_a_network_failure_is_transient() -> None:
    def unreachable() -> None:
        raise EndpointConnectionError(endpoint_url="https://emr.eu-west-1.amazonaws.com")

    with pytest.raises(TransientError, match="Could not connect"):
        aws_call("listing EMR clusters", unreachable)


def test_codes_a_caller_names_win_over_the_general_rules() -> None:
    from botocore.exceptions import ClientError

    def error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    codes = {"ResourceNotFoundException": ResourceGone, "ValidationException": InvalidInput}
    assert isinstance(domain_error(error("ResourceNotFoundException", 400), "x", codes=codes),
                      ResourceGone)
    assert isinstance(domain_error(error("ValidationException", 400), "x", codes=codes),
                      InvalidInput)
    assert isinstance(domain_error(error("ValidationException", 400), "x"), ConfigurationError)
    assert isinstance(domain_error(error("ThrottlingException", 400), "x", codes=codes),
                      TransientError)

"""One execution of the real state machine on the local deployment: event, live timeline,
summary.

After each execution the run ledger is written to `<work dir>/ledger.json` (the next process
restores it: local_runtime.state). The summary and the alerts a RunResult carries, and whatever
print_summary prints, have every password redacted (local_runtime.redaction)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from local_runtime.redaction import redact_obj
from local_runtime.stack import LocalDeployment, LocalRuntimeError

# -- EventBridge --------------------------------------------------------------------------------

def s3_object_created_event(bucket: str, key: str, size: int, etag: str,
                            region: str = "us-east-1", account: str = "123456789012",
                            version_id: str | None = None) -> dict[str, Any]:
    """The EventBridge "Object Created" event S3 sends for a new object (S3 user guide,
    "EventBridge event message structure"): `version-id` only from a versioned bucket."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag}
    if version_id:
        obj["version-id"] = version_id
    obj["sequencer"] = f"{int(time.time() * 1e6):X}"
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created",
        "source": "aws.s3", "account": account, "time": now, "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                   "request-id": uuid.uuid4().hex[:16].upper(), "requester": account,
                   "source-ip-address": "127.0.0.1", "reason": "PutObject"},
    }


def pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge pattern matching, by moto's implementation (prefix, suffix, wildcard,
    anything-but, numeric, exists, $or), which moto's events backend uses for its rules."""
    from moto.events.models import EventPattern

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))


# -- a run --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    status: str
    execution_arn: str
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    transitions: int = 0
    wall_seconds: float = 0.0
    ledger: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    job_seconds: float = 0.0
    sql_seconds: float = 0.0
    lambda_seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    # The derived datasets' runs this execution's loads started (TriggerDerived).
    derived: list[RunResult] = field(default_factory=list)


class Timeline:
    """Prints each state as it exits: name, duration, outcome."""

    def __init__(self, out: TextIO | None):
        self.out = out
        self.seen = 0
        self.entered: dict[str, dt.datetime] = {}
        self.errors: dict[str, str] = {}
        self.rows: list[dict[str, Any]] = []
        self.transitions = 0

    def feed(self, events: list[dict[str, Any]]) -> None:
        for ev in events[self.seen:]:
            typ = ev["type"]
            ts = ev["timestamp"]
            if typ.endswith("StateEntered"):
                name = ev["stateEnteredEventDetails"]["name"]
                self.entered[name] = ts
                self.transitions += 1
            elif typ.endswith("Failed") and typ != "ExecutionFailed":
                details: Any = next((v for k, v in ev.items() if k.endswith("EventDetails")), {})
                if isinstance(details, dict) and details.get("error"):
                    self.errors[self._current()] = details["error"]
            elif typ.endswith("StateExited"):
                name = ev["stateExitedEventDetails"]["name"]
                start = self.entered.pop(name, ts)
                seconds = (ts - start).total_seconds()
                err = self.errors.pop(name, None)
                outcome = f"caught {err}" if err else "ok"
                row = {"state": name, "seconds": round(seconds, 3), "outcome": outcome}
                self.rows.append(row)
                if self.out:
                    mark = "x" if err else "+"
                    print(f"  {mark} {name:<28} {seconds:7.2f}s  {outcome}", file=self.out,
                          flush=True)
            self.seen += 1

    def _current(self) -> str:
        return next(reversed(self.entered), "?") if self.entered else "?"


@dataclass(frozen=True)
class PutObject:
    """An upload to the raw bucket: what its "Object Created" event says about it."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None

    def event(self) -> dict[str, Any]:
        return s3_object_created_event(self.bucket, self.key, self.size, self.etag,
                                       version_id=self.version_id)


def put_raw_object(deployment: LocalDeployment, key: str, body: bytes) -> PutObject:
    """The key's current object when it already holds exactly `body` (the same object,
    delivered again: its event is a redelivery), else a new upload (in the versioned raw
    bucket a new version, whose event is a run of its own)."""
    bucket = deployment.bucket("raw")
    s3 = deployment.client("s3")
    current = None
    with contextlib.suppress(s3.exceptions.ClientError):
        current = s3.head_object(Bucket=bucket, Key=key)
    if current is not None:
        etag = current["ETag"].strip('"')
        if current["ContentLength"] == len(body) and etag == _md5(body):
            return PutObject(bucket, key, len(body), etag, current.get("VersionId"))
    resp = s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag, version = resp["ETag"].strip('"'), resp.get("VersionId")
    known = deployment.raw_versions.get((bucket, key))
    if current is None and version and known and known[0] == etag:
        # An earlier process ran exactly these bytes as this version, and the local bucket did
        # not outlive it: the key holds that version again, as it still would in AWS.
        from local_runtime.moto_patches import set_version_id

        set_version_id(bucket, key, version, known[1])
        version = known[1]
    return PutObject(bucket, key, len(body), etag, version)


def _md5(body: bytes) -> str:
    """S3's ETag of a single-part upload."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def check_event(deployment: LocalDeployment, event: dict[str, Any]) -> None:
    """The event must match one of the template's rules that start the state machine."""
    if not deployment.event_patterns:
        return
    if not any(pattern_matches(p, event) for p in deployment.event_patterns):
        key = event.get("detail", {}).get("object", {}).get("key")
        raise LocalRuntimeError(
            f"no EventBridge rule of the template matches this event (key {key!r}): the "
            "object would not start the pipeline")


def run_execution(deployment: LocalDeployment, payload: dict[str, Any], *,
                  out: TextIO | None = None, name: str | None = None, timeout_s: float = 900
                  ) -> RunResult:
    """Start one execution, follow it to its end; then, as the template's EventBridge rule
    does after a SUCCEEDED execution, start (and follow) the derived datasets' runs that wait
    for its loads (`derived_runs`: RunResult.derived)."""
    sfn = deployment.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=deployment.state_machine_arn,
                              name=name or f"local-{uuid.uuid4().hex[:12]}",
                              input=json.dumps(payload))["executionArn"]
    res = follow_execution(deployment, arn, out=out, timeout_s=timeout_s)
    res.derived = derived_runs(deployment, res, out=out, timeout_s=timeout_s)
    if res.derived:
        res.summary["derived"] = [d.summary for d in res.derived]
    return res


# How often an execution's status is asked, and how often its whole history is read for the
# live timeline: moto returns all of it each time, every state's input and output, and this
# process shares the machine's cores with the Spark job (read once at the end when nothing is
# printed).
POLL_SECONDS = 0.1
HISTORY_SECONDS = 0.5


def follow_execution(deployment: LocalDeployment, arn: str, *, out: TextIO | None = None,
                     timeout_s: float = 900) -> RunResult:
    """Poll an execution to its end (printing its timeline as it goes when `out` is given);
    its RunResult."""
    sfn = deployment.client("stepfunctions")
    job0 = deployment.spark_runner.job_seconds()
    sql0 = deployment.data_api.sql_seconds()
    lam0 = deployment.lambda_seconds
    t0 = time.monotonic()
    timeline = Timeline(out)
    shown = t0
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            break
        if time.monotonic() - t0 > timeout_s:
            sfn.stop_execution(executionArn=arn, error="LocalTimeout")
            break
        if out is not None and time.monotonic() - shown >= HISTORY_SECONDS:
            timeline.feed(_history(sfn, arn))
            shown = time.monotonic()
        time.sleep(POLL_SECONDS)
    events = _history(sfn, arn)
    timeline.feed(events)
    output = json.loads(desc.get("output") or "{}")
    res = RunResult(status=desc["status"], execution_arn=arn, output=output,
                    error=desc.get("error"), cause=desc.get("cause"), timeline=timeline.rows,
                    transitions=timeline.transitions, wall_seconds=time.monotonic() - t0)
    res.job_seconds = deployment.spark_runner.job_seconds() - job0
    res.sql_seconds = deployment.data_api.sql_seconds() - sql0
    res.lambda_seconds = deployment.lambda_seconds - lam0
    if res.status == "FAILED" and not output:
        # a Fail state: the output is the last state's input; take it from the history
        for ev in reversed(events):
            d = ev.get("stateEnteredEventDetails")
            if d and d.get("input"):
                with contextlib.suppress(ValueError):
                    res.output = json.loads(d["input"])
                break
    res.ledger = ledger_item(deployment, (res.output.get("run") or {}).get("run_id"))
    res.alerts = redact_obj(drain_alerts(deployment))
    res.summary = redact_obj(summarize(res))
    dump_ledger(deployment)
    return res


TRIGGER_DERIVED = "TriggerDerivedFunction"


def succeeded_event(deployment: LocalDeployment, res: RunResult) -> dict[str, Any]:
    """The "Step Functions Execution Status Change" event of a SUCCEEDED execution, as
    EventBridge delivers it ("AWS Step Functions events", EventBridge events reference)."""
    now = dt.datetime.now(dt.UTC)
    name = res.execution_arn.rsplit(":", 1)[-1]
    return {
        "version": "0", "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": res.execution_arn.split(":")[4], "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": res.execution_arn.split(":")[3], "resources": [res.execution_arn],
        "detail": {"executionArn": res.execution_arn,
                   "stateMachineArn": deployment.state_machine_arn, "name": name,
                   "status": "SUCCEEDED", "output": json.dumps(res.output),
                   "outputDetails": {"included": True}},
    }


def _rule_patterns(deployment: LocalDeployment, function: str) -> list[Any]:
    """The EventBridge patterns of a function's rules in the template, resolved."""
    from local_runtime import cfn

    events = cfn.function_properties(deployment.template, function).get("Events") or {}
    return [deployment.resolver.resolve(e["Properties"]["Pattern"]) for e in events.values()
            if e.get("Type") in ("EventBridgeRule", "CloudWatchEvent")]


def derived_runs(deployment: LocalDeployment, res: RunResult, *, out: TextIO | None = None,
                 timeout_s: float = 900) -> list[RunResult]:
    """What the template's TriggerDerived rule does after a SUCCEEDED execution: its
    function starts the runs of the derived datasets waiting for the loads (each under a
    deterministic name, so a second delivery starts nothing new); each is followed here."""
    function = deployment.resolver.refs.get(TRIGGER_DERIVED)  # its name in the deployment
    if not deployment.derived_triggers or res.status != "SUCCEEDED" \
            or function not in deployment.functions:
        return []
    event = succeeded_event(deployment, res)
    if not any(pattern_matches(p, event) for p in _rule_patterns(deployment, TRIGGER_DERIVED)):
        return []
    answer = deployment.invoke_lambda(str(function), event)
    if answer.get("FunctionError"):
        raise LocalRuntimeError(f"{TRIGGER_DERIVED} failed: {answer.get('Payload')}")
    prefix = deployment.state_machine_arn.replace(":stateMachine:", ":execution:")
    results = []
    for started in answer["Payload"]["started"]:
        if out:
            days = f"{started['from_day']}..{started['as_of']}" if started.get("from_day") \
                else started["as_of"]
            print(f"\n== after the load: {started['dataset']} {days} "
                  f"({started['name']}, {started['result']})", file=out, flush=True)
        results.append(follow_execution(deployment, f"{prefix}:{started['name']}", out=out,
                                        timeout_s=timeout_s))
    return results


def batch_event(dataset: str, batch_id: str, puts: list[PutObject], *, force: bool = False
                ) -> dict[str, Any]:
    """A pipeline execution's input for a batch (pipeline_aws.contracts.BatchTrigger)."""
    return {"batch": {"dataset": dataset, "batch_id": batch_id, "force": force,
                      "objects": [{"key": p.key, "version_id": p.version_id, "size": p.size}
                                  for p in puts]}}


def run_batch(deployment: LocalDeployment, dataset: str, files: list[tuple[Path, str]], *,
              batch_id: str | None = None, force: bool = False, out: TextIO | None = None,
              name: str | None = None, timeout_s: float | None = None) -> RunResult:
    """Put each (file, key) as a raw object, then run ONE pipeline execution over all of them
    (a batch: one Spark job, one gate decision per partition, one load). The execution's
    time limit grows with the batch (default 900 s plus 120 s per object)."""
    puts = [put_raw_object(deployment, key, Path(file).read_bytes()) for file, key in files]
    batch_id = batch_id or f"local-{uuid.uuid4().hex[:12]}"
    if out:
        print(f"\n== batch {batch_id}: {len(puts)} object(s) of {dataset} -> "
              f"{deployment.state_machine_arn.rsplit(':', 1)[-1]}", file=out, flush=True)
    res = run_execution(deployment, batch_event(dataset, batch_id, puts, force=force),
                        out=out, name=name, timeout_s=timeout_s or 900 + 120 * len(puts))
    res.summary["partitions"] = batch_partitions(deployment, res)
    return res


def batch_partitions(deployment: LocalDeployment, res: RunResult) -> list[dict[str, Any]]:
    """Each partition of the run: its ledger status, verdict, lines and rows loaded."""
    run = res.output.get("run") or {}
    decided = (res.output.get("quality") or {}).get("partitions") or {}
    out = []
    for part in run.get("partitions") or []:
        item = ledger_item(deployment, part.get("run_id")) or {}
        out.append({"partition": part.get("partition"), "run_id": part.get("run_id"),
                    "status": item.get("status"),
                    "verdict": (decided.get(part.get("partition")) or {}).get("verdict"),
                    "lines": item.get("lines"), "rows_loaded": item.get("rows_loaded"),
                    "refused": part.get("refused")})
    out.extend({"partition": s.get("partition"), "run_id": s.get("run_id"),
                "status": "SKIPPED", "reason": s.get("reason")}
               for s in run.get("skipped") or [])
    return out


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def ledger_item(deployment: LocalDeployment, run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    from pipeline_aws.ledger import RunLedger

    table = deployment.session.resource("dynamodb").Table(deployment.ledger_table)
    return RunLedger(table).get(run_id)


def drain_alerts(deployment: LocalDeployment) -> list[dict[str, Any]]:
    sqs = deployment.client("sqs")
    alerts = []
    for topic, url in deployment.alert_queues.items():
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                body = json.loads(m["Body"])
                alerts.append({"topic": topic, "subject": body.get("Subject"),
                               "message": body.get("Message"),
                               "attributes": body.get("MessageAttributes", {})})
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return alerts


def summarize(res: RunResult) -> dict[str, Any]:
    out = res.output
    ledger = res.ledger or {}
    run = out.get("run") or {}
    quality = out.get("quality") or {}
    lines = ledger.get("lines") or quality.get("lines") or {}
    rows = ledger.get("rows_loaded") or (out.get("record") or {}).get("rows_loaded") or {}
    cost_record = ledger.get("cost") or {}
    cost = cost_record.get("total_usd")
    if cost is None:
        cost = (out.get("cost") or {}).get("total_usd")
    failure = ledger.get("failure") or out.get("failure_summary") or {}
    return {
        "status": res.status, "execution_arn": res.execution_arn,
        "run_id": run.get("run_id"), "attempt": run.get("attempt"),
        "dataset": run.get("dataset"), "partition": run.get("partition"),
        "compute": run.get("compute"),
        "duplicate": bool(run.get("duplicate")),
        "ledger_status": ledger.get("status"),
        "lines": {"in": lines.get("in"), "out": lines.get("out"),
                  "quarantined": lines.get("quarantined"), "duplicates": lines.get("duplicates")},
        "quality_verdict": ledger.get("quality_verdict") or quality.get("verdict"),
        "quality_summary": quality.get("summary"),
        "rows_loaded": rows, "estimated_cost_usd": cost,
        "cost_basis": {k: cost_record.get(k) for k in ("region", "rate_card_version", "complete")},
        "failure": failure or None, "alerts": len(res.alerts),
        "state_transitions": res.transitions, "seconds": round(res.wall_seconds, 2),
        "job_seconds": round(res.job_seconds, 2), "sql_seconds": round(res.sql_seconds, 2),
        "orchestration_seconds": round(res.wall_seconds - res.job_seconds - res.sql_seconds, 2),
    }


def cost_line(usd: float, basis: dict[str, Any]) -> str:
    """What this run would cost on AWS: the tracker's figure from what the stand-ins bill (EMR
    Serverless workers and cluster instances as AWS bills them, Lambda, Step Functions), at the
    rate card's list prices: an estimate, not a bill."""
    where = f"{basis['region']} list prices" if basis.get("region") else "list prices"
    card = f", rate card {basis['rate_card_version']}" if basis.get("rate_card_version") else ""
    partial = "; some parts could not be priced" if basis.get("complete") is False else ""
    return f"cost on AWS (estimate): ${usd:.4f} ({where}{card}{partial})"


def print_summary(summary: dict[str, Any], alerts: list[dict[str, Any]], out: TextIO) -> None:
    # redacted before anything is cut short (a cut URL would no longer look like one)
    s, alerts = redact_obj(summary), redact_obj(alerts)
    print(f"\n  status: {s['status']}"
          + (" (duplicate delivery: nothing to do; --rerun processes it again)"
             if s.get("duplicate") else ""), file=out)
    if s.get("run_id"):
        attempt = f", attempt {s['attempt']}" if (s.get("attempt") or 1) > 1 else ""
        print(f"  run: {s['run_id']} ({s.get('compute')}{attempt})", file=out)
    ln = s["lines"]
    if any(v is not None for v in ln.values()):
        print(f"  lines: in {ln['in']}, out {ln['out']}, quarantined {ln['quarantined']}, "
              f"duplicates {ln['duplicates']}", file=out)
    if s.get("quality_verdict"):
        print(f"  quality: {s['quality_verdict']}", file=out)
    for table, n in (s.get("rows_loaded") or {}).items():
        print(f"  loaded: {table} {n} rows", file=out)
    if s.get("estimated_cost_usd") is not None:
        print(f"  {cost_line(float(s['estimated_cost_usd']), s.get('cost_basis') or {})}",
              file=out)
    if s.get("failure"):
        print(f"  failure: {json.dumps(s['failure'], default=str)[:600]}", file=out)
    for a in alerts:
        print(f"  alert: {a.get('subject')}: {str(a.get('message'))[:300]}", file=out)
    print(f"  state transitions: {s['state_transitions']}; {s['seconds']} s "
          f"(Spark {s['job_seconds']} s, SQL {s['sql_seconds']} s, other "
          f"{s['orchestration_seconds']} s)", file=out)


# -- ledger persistence -------------------------------------------------------------------------

def ledger_file(deployment: LocalDeployment) -> Path:
    return deployment.ledger_path


def dump_ledger(deployment: LocalDeployment) -> None:
    """The ledger table to `<work dir>/ledger.json` (local_runtime.state)."""
    deployment.dump_ledger()

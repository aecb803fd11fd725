"""`python -m local_runtime run --dir DIR --dataset NAME`: every file of DIR dropped at once as
raw objects, their "Object Created" events sent where the template's raw bucket rule sends them
(the burst queue), and the template's SQS event source mapping played locally: AdmitObjects
takes the queue's messages in batches and starts the batched pipeline executions, at most the
dataset's limit at once; the executions run concurrently (the EMR Serverless stand-in holds job
runs to the application's maximum capacity, local_runtime.moto_patches).

The local event source mapping (EventSource) follows the template's mapping: BatchSize records
gathered for MaximumBatchingWindowInSeconds (scaled by the deployment's time factor), the
function invoked with an SQS event, the records it reports in `batchItemFailures` (or all of
them when it fails) left on the queue, the others deleted. One difference, said here: a
record sent back waits for the queue's visibility timeout on AWS; locally it is made visible
again as soon as one of the pipeline's executions ends (a slot may be free), which is when
waiting could change anything. The queue's own redrive policy (moto) still moves a record to the
dead-letter queue after maxReceiveCount receives.

Progress: a line per admission (records, started, sent back) and per execution as it ends; at
the end a summary (partitions loaded, executions, job runs, duplicates, cost, wall time).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from local_runtime.errors import LocalRuntimeError

MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"


@dataclass(frozen=True)
class DirRequest:
    dataset: Any  # pipeline_core.catalog.Dataset
    files: list[tuple[Path, str]]  # (file, raw key)
    left_out: list[str]


def plan_dir(directory: Path, dataset_name: str, catalog: Any) -> DirRequest:
    """What `run --dir` is asked, checked before anything starts (LocalRuntimeError)."""
    from pipeline_core.errors import UnknownDataset

    try:
        ds = catalog.get(dataset_name)
    except UnknownDataset:
        known = ", ".join(sorted(catalog.datasets)) or "none"
        raise LocalRuntimeError(f"unknown dataset {dataset_name!r}: the catalog (datasets/) "
                                f"has {known}") from None
    if not Path(directory).is_dir():
        raise LocalRuntimeError(f"--dir {directory} is not a directory")
    files, left_out = [], []
    for path in sorted(p for p in Path(directory).iterdir() if p.is_file()):
        key = f"{ds.source.prefix}{path.name}"
        (files.append((path, key)) if ds.partition_for_key(key) else left_out.append(path.name))
    if not files:
        raise LocalRuntimeError(
            f"--dir {directory} has no file whose name makes a {ds.name} key "
            f"({ds.source.prefix}<YYYY-MM-DD><one of {', '.join(ds.source.suffixes)}>)")
    return DirRequest(ds, files, left_out)


# -- the event source mapping ---------------------------------------------------------------------

class EventSource:
    """The template's SQS event source mapping on the local deployment."""

    def __init__(self, deployment: Any):
        self.d = deployment
        r = deployment.resolver
        found = [(lid, res.get("Properties") or {}) for lid, res in
                 deployment.template["Resources"].items() if res.get("Type") == MAPPING_TYPE]
        if len(found) != 1:
            raise LocalRuntimeError(f"template.yaml needs one {MAPPING_TYPE} (the burst "
                                    f"queue's), found {len(found)}")
        _, props = found[0]
        queue_lid = props["EventSourceArn"]["Fn::GetAtt"][0]
        self.queue_arn = r.attrs[(queue_lid, "Arn")]
        self.function = str(r.resolve(props["FunctionName"]))
        self.batch_size = int(props.get("BatchSize", 10))
        window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        self.window_s = window * deployment.time_factor
        self.sqs = deployment.client("sqs")
        self.queue_url = self.sqs.get_queue_url(
            QueueName=r.attrs[(queue_lid, "QueueName")])["QueueUrl"]

    def send(self, events: list[dict[str, Any]]) -> None:
        """What the rule's SQS target does with each event: one message, the event as body."""
        for i in range(0, len(events), 10):
            entries = [{"Id": str(n), "MessageBody": json.dumps(e)}
                       for n, e in enumerate(events[i:i + 10])]
            failed = self.sqs.send_message_batch(QueueUrl=self.queue_url,
                                                 Entries=entries).get("Failed")
            if failed:
                raise LocalRuntimeError(f"SendMessageBatch to the burst queue failed: {failed}")

    def receive(self) -> list[dict[str, Any]]:
        """Up to BatchSize visible messages, gathered for the batching window."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window_s
        while len(messages) < self.batch_size:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, AttributeNames=["All"],
                MaxNumberOfMessages=min(10, self.batch_size - len(messages))).get("Messages", [])
            messages += got
            if not got and time.monotonic() >= deadline:
                break
            if not got:
                time.sleep(0.05)
        return messages

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes") or {}, "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn, "awsRegion": self.d.resolver.region}
            for m in messages]}

    def deliver(self, messages: list[dict[str, Any]]) -> tuple[list[str], str | None]:
        """Invoke the function; delete what it processed. Returns the receipt handles left on
        the queue and the function's error, if it failed."""
        response = self.d.invoke_lambda(self.function, self.sqs_event(messages))
        by_id = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        if response.get("FunctionError"):
            return list(by_id.values()), str(response["Payload"].get("errorMessage"))
        failed = {f["itemIdentifier"] for f in response["Payload"].get("batchItemFailures", [])}
        done = [h for i, h in by_id.items() if i not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(done[i:i + 10])])
        return [by_id[i] for i in failed if i in by_id], None

    def release(self, handles: list[str]) -> None:
        """Make records sent back visible again now (module docstring)."""
        for h in handles:
            try:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=h,
                                                   VisibilityTimeout=0)
            except self.sqs.exceptions.ClientError:
                continue  # moved to the dead-letter queue or already deleted

    def pending(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attrs["Attributes"].values())


# -- the burst ------------------------------------------------------------------------------------

@dataclass
class BurstResult:
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> described
    deliveries: int = 0
    sent_back: int = 0
    max_running: int = 0
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


class _Watch:
    """The pipeline's executions started since the burst began: running ones, ended ones."""

    def __init__(self, deployment: Any, out: TextIO):
        self.sfn, self.arn, self.out = (deployment.client("stepfunctions"),
                                        deployment.state_machine_arn, out)
        self.before = {e["name"] for e in self._all()}
        self.running: set[str] = set()
        self.ended: dict[str, dict[str, Any]] = {}

    def _all(self) -> list[dict[str, Any]]:
        pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.arn)
        return [e for page in pages for e in page["executions"]]

    def poll(self) -> list[str]:
        """The names that ended since the last poll (each printed)."""
        ours = [e for e in self._all() if e["name"] not in self.before]
        self.running = {e["name"] for e in ours if e["status"] == "RUNNING"}
        new_ends = [e for e in ours if e["status"] != "RUNNING" and e["name"] not in self.ended]
        for e in new_ends:
            desc = self.sfn.describe_execution(executionArn=e["executionArn"])
            self.ended[e["name"]] = desc
            print(f"  {_end_line(desc)}", file=self.out, flush=True)
        return [e["name"] for e in new_ends]


def _end_line(desc: dict[str, Any]) -> str:
    out = json.loads(desc.get("output") or "{}")
    run = out.get("run") or {}
    parts = run.get("partitions") or []
    what = "duplicate: nothing new" if run.get("duplicate") else \
        f"{len(parts)} partition(s) {run.get('partition') or ''}".rstrip()
    cost = (out.get("cost") or {}).get("total_usd")
    priced = f", ${float(cost):.4f}" if cost is not None else ""
    return f"{desc['status']:<9} {desc['name']}: {what}{priced}"


def run_burst(deployment: Any, events: list[dict[str, Any]], out: TextIO, *,
              timeout_s: float = 6 * 3600) -> BurstResult:
    """Send `events` to the burst queue at once and play the event source mapping until the
    queue is empty and no execution runs."""
    source, watch, result = EventSource(deployment), _Watch(deployment, out), BurstResult()
    t0 = time.monotonic()
    source.send(events)
    print(f"  {len(events)} event(s) -> the burst queue; AdmitObjects takes up to "
          f"{source.batch_size} at a time", file=out, flush=True)
    held: list[str] = []
    while time.monotonic() - t0 < timeout_s:
        messages = source.receive()
        if messages:
            held += _admit(source, messages, watch, result, out)
        ended = watch.poll()
        result.max_running = max(result.max_running, len(watch.running))
        if held and (ended or not watch.running):
            source.release(held)
            held = []
        if not messages and not watch.running and not held and source.pending() == 0:
            break
        if not messages:
            time.sleep(0.2)
    watch.poll()
    result.executions, result.seconds = watch.ended, time.monotonic() - t0
    deployment.dump_ledger()
    return result


def _admit(source: EventSource, messages: list[dict[str, Any]], watch: _Watch,
           result: BurstResult, out: TextIO) -> list[str]:
    before = watch.running | set(watch.ended)
    back, error = source.deliver(messages)
    watch.poll()
    started = sorted(watch.running - before)
    result.deliveries += 1
    result.sent_back += len(back)
    note = f"; the function failed: {error}" if error else ""
    print(f"  AdmitObjects: {len(messages)} record(s), started {len(started)} execution(s)"
          f"{' ' + ', '.join(started) if started else ''}, {len(back)} back to the queue"
          f"{note}", file=out, flush=True)
    return back


# -- the command -------------------------------------------------------------------------------

def drop_files(deployment: Any, request: DirRequest) -> list[Any]:
    """Each file as its raw object (runner.put_raw_object): the uploads, whose events go out."""
    from local_runtime.runner import check_event, put_raw_object

    puts = [put_raw_object(deployment, key, path.read_bytes()) for path, key in request.files]
    for put in puts:
        check_event(deployment, put.event())
    return puts


def summarize(deployment: Any, request: DirRequest, puts: list[Any],
              result: BurstResult) -> dict[str, Any]:
    from pipeline_aws.ledger import RunLedger

    ds = request.dataset
    wanted = {ds.partition_for_key(p.key): p.version_id for p in puts}
    table = deployment.session.resource("dynamodb").Table(deployment.ledger_table)
    loaded_now = RunLedger(table).loaded_versions(ds.name, sorted(wanted))
    loaded = sorted(p for p, v in wanted.items() if p in loaded_now and loaded_now[p] == v)
    outputs = {n: json.loads(d.get("output") or "{}") for n, d in result.executions.items()}
    costs = [float(o["cost"]["total_usd"]) for o in outputs.values()
             if (o.get("cost") or {}).get("total_usd") is not None]
    statuses = [d["status"] for d in result.executions.values()]
    return {
        "dataset": ds.name, "objects": len(puts), "loaded": len(loaded),
        "not_loaded": sorted(set(wanted) - set(loaded)),
        "executions": len(result.executions),
        "succeeded": statuses.count("SUCCEEDED"), "failed": len(statuses) - statuses.count(
            "SUCCEEDED"),
        "job_runs": sum(bool(o.get("job_run") or o.get("cluster")) for o in outputs.values()),
        "duplicates": sum(bool((o.get("run") or {}).get("duplicate")) for o in outputs.values()),
        "deliveries": result.deliveries, "sent_back": result.sent_back,
        "max_running": result.max_running, "cost_usd": round(sum(costs), 6),
        "seconds": round(result.seconds, 2), "left_out": request.left_out,
    }


def print_burst_summary(s: dict[str, Any], out: TextIO) -> None:
    print(f"\n  burst {s['dataset']}: {s['loaded']}/{s['objects']} partition(s) loaded", file=out)
    print(f"  executions: {s['executions']} ({s['failed']} not succeeded, {s['duplicates']} "
          f"duplicate), job runs {s['job_runs']}, at most {s['max_running']} running at once",
          file=out)
    print(f"  AdmitObjects: {s['deliveries']} invocation(s), {s['sent_back']} record(s) sent "
          f"back to the queue (dataset at its limit)", file=out)
    print(f"  cost on AWS (estimate): ${s['cost_usd']:.4f}; {s['seconds']:.1f} s", file=out)
    if s["not_loaded"]:
        print(f"  not loaded: {', '.join(s['not_loaded'][:20])}", file=out)
    if s["left_out"]:
        print(f"  left out (not a {s['dataset']} key): {', '.join(s['left_out'][:10])}",
              file=out)

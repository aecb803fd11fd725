"""The data-quality gate behind functions/evaluate_quality: turns the rules the Spark job
measured into pass / warn / fail.

The job measures every DQDL rule it can decide on its own and writes `quality.json`; rules whose
threshold depends on earlier runs (`RowCount > median(last(10)) * 0.3`, `DetectAnomalies`) come
back `deferred` and are decided here against the metrics that earlier SUCCEEDED runs of the
dataset left in the run ledger. A failed `error` rule stops the load; a failed `warn` rule only
alerts. Missing history never fails a rule: a new dataset has to be able to start.

- `reports`: quality.json and metrics.json, parsed and validated
- `rules`: the DQDL seam (pipeline_core.dqdl decides history thresholds)
- `gate`: QualityGate, the logic, with its ports
- `adapters`: the S3 JSON reader, the EMF metrics, the catalog's history window
"""

from pipeline_aws.quality.gate import QualityGate
from pipeline_aws.quality.rules import DqdlRuleEngine

__all__ = ["DqdlRuleEngine", "QualityGate"]

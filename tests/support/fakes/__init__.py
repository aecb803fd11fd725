"""In-memory fakes of the product's ports, for testing domain logic without AWS or moto.

Each fake implements the same Protocol as its adapter (mypy checks both), and the contract tests
in tests/unit/contracts run the same tests against the fake and the real adapter on moto, so the
two cannot drift apart.
"""

from tests.support.fakes.alerts import FakeAlerts
from tests.support.fakes.cost import FakeHistory, FakeRateCardOverride, FakeServerless
from tests.support.fakes.emr import FakeClusters, FakeJobRuns
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.support.fakes.s3_objects import FakeS3Objects

__all__ = ["FakeAlerts", "FakeClusters", "FakeHistory", "FakeJobRuns", "FakeLedger",
           "FakeRateCardOverride", "FakeRedshiftData", "FakeS3Objects", "FakeServerless"]

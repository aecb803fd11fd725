"""Domain errors. Their class names are the error names Step Functions Retry/Catch match on."""


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class InvalidInput(PipelineError):
    """The triggering event or object cannot be processed (bad key, empty file, bad header...)."""


class UnknownDataset(PipelineError):
    """No dataset in the catalog claims this key or name."""


class ConfigurationError(PipelineError):
    """The catalog, a rules file or the environment is invalid."""


class TransientError(PipelineError):
    """A dependency failed in a way that a retry may fix (throttling, timeouts)."""


class QualityGateFailed(PipelineError):
    """The data-quality verdict is fail: the load must not happen."""

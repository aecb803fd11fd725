"""The local runtime's own error: a deployment cannot be built or a run cannot be started.

The CLI prints its message as one line (`error: ...`, passwords redacted) and exits 2."""


class LocalRuntimeError(Exception):
    """The local deployment cannot be built or a run cannot be started (the message says why)."""

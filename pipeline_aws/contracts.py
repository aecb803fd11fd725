"""The state machine's payloads: the run manifest, the execution reference, and each function's
input and output, as pydantic models (documented in docs/architecture.md).

Every function reads its event through `parse`, so a malformed payload is refused the same way
everywhere: an `InvalidInput` (the name the ASL's Catch matches) whose message names each bad
field. Models ignore fields they do not need, so a state that grows never breaks a reader.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline_core.errors import InvalidInput, PipelineError

Model = TypeVar("Model", bound=BaseModel)


def validation_message(error: ValidationError, prefix: str = "") -> str:
    """One `path: problem` entry per problem, the path from the payload's top."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "") or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse(
    model: type[Model], data: Any, what: str, *, error: type[PipelineError] = InvalidInput,
    prefix: str = "",
) -> Model:
    """Validate `data` as `model`; on failure raise `error` ("<what>: <problems>")."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(f"{what}: {validation_message(e, prefix)}") from e


# --- the run's payloads (ResolveRun, EvaluateQuality, StartLoad, RecordRun, HandleFailure) ---

# --- events and payloads of CleanupExecution, AutoTerminator and TrackCost -------------------

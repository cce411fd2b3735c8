"""Secret values for encrypted parameters, resolved at apply time from where the config says
they live (an environment variable or a mounted file). Values never leave this module except
in the PutPipelineDefinition call; the digest recorded in tags is salted and truncated."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from ..desired.definition import CompiledPipeline
from ..errors import ReconcilerError


class SecretError(ReconcilerError):
    """A secret the pipeline needs cannot be read; says which and from where."""


def resolve_secrets(pipeline: CompiledPipeline, environ: Mapping[str, str],
                    read_file: Callable[[str], str]) -> dict[str, str]:
    """{parameter id: value} for every secret of the pipeline."""
    values = {}
    for secret in pipeline.secrets:
        if secret.source == "env":
            value = environ.get(secret.name)
            if value is None:
                raise SecretError(f"{secret.parameter_id}: environment variable {secret.name} "
                                  "is not set; set it where the reconciler runs (apply fails "
                                  "for this pipeline until then)")
        else:
            try:
                value = read_file(secret.name).rstrip("\n")
            except OSError as exc:
                raise SecretError(f"{secret.parameter_id}: cannot read {secret.name}: "
                                  f"{exc.strerror}") from None
        values[secret.parameter_id] = value
    return values


def secrets_digest(pipeline: CompiledPipeline, values: Mapping[str, str]) -> str:
    """A short digest of the values, salted with the pipeline, to notice a rotated secret."""
    if not values:
        return "none"
    text = pipeline.name + "\0" + "\0".join(f"{k}={values[k]}" for k in sorted(values))
    return hashlib.sha256(text.encode()).hexdigest()[:16]

"""Secret values for encrypted parameters, resolved at apply time from where the config says
they live (an environment variable or a mounted file). Values never leave this module except
in the PutPipelineDefinition call.

The secrets tag lets a pass notice a rotated secret without reading it back from AWS (the
service masks encrypted values). It is an HMAC-SHA256 of the values under a key only this
installation holds (``RECONCILER_SECRETS_KEY``, or the file ``RECONCILER_SECRETS_KEY_FILE``
names), so whoever can call DescribePipelines cannot test guesses against it. Without a key,
the tag says ``unkeyed`` and rotations are not noticed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..desired.definition import CompiledPipeline
from ..errors import ReconcilerError

KEY_VARIABLE = "RECONCILER_SECRETS_KEY"
KEY_FILE_VARIABLE = "RECONCILER_SECRETS_KEY_FILE"
UNKEYED = "unkeyed"


class SecretError(ReconcilerError):
    """Secrets a pipeline needs that cannot be read; says which and from where."""


@dataclass(frozen=True)
class SecretsKey:
    """The installation's key for the secrets tag (never printed)."""

    value: bytes

    def __repr__(self) -> str:
        return "SecretsKey(<hidden>)"


def secrets_key(environ: Mapping[str, str], read_file: Callable[[str], str]
                ) -> SecretsKey | None:
    """The key from the environment (or the file it names), or None when none is set."""
    if environ.get(KEY_VARIABLE):
        return SecretsKey(environ[KEY_VARIABLE].encode())
    if environ.get(KEY_FILE_VARIABLE):
        try:
            text = read_file(environ[KEY_FILE_VARIABLE]).strip()
        except OSError as exc:
            raise SecretError(f"{KEY_FILE_VARIABLE}: cannot read "
                              f"{environ[KEY_FILE_VARIABLE]}: {exc.strerror}") from None
        return SecretsKey(text.encode()) if text else None
    return None


def resolve_secrets(pipeline: CompiledPipeline, environ: Mapping[str, str],
                    read_file: Callable[[str], str]) -> dict[str, str]:
    """{parameter id: value} for every secret of the pipeline; every one that cannot be
    read is named in the one error raised."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for secret in pipeline.secrets:
        if secret.source == "env":
            value = environ.get(secret.name)
            if value is None:
                missing.append(f"{secret.parameter_id}: environment variable {secret.name} is "
                               "not set")
                continue
            if not value:
                missing.append(f"{secret.parameter_id}: environment variable {secret.name} is "
                               "set but empty")
                continue
        else:
            try:
                value = read_file(secret.name).rstrip("\n")
            except OSError as exc:
                missing.append(f"{secret.parameter_id}: cannot read {secret.name}: "
                               f"{exc.strerror}")
                continue
            if not value:
                missing.append(f"{secret.parameter_id}: {secret.name} is empty")
                continue
        values[secret.parameter_id] = value
    if missing:
        raise SecretError("; ".join(missing) + " (set them where the reconciler runs; apply "
                          "fails for this pipeline until then)")
    return values


def secrets_digest(pipeline: CompiledPipeline, values: Mapping[str, str],
                   key: SecretsKey | None) -> str:
    """A short HMAC of the values under the installation's key, to notice a rotated secret."""
    if not values:
        return "none"
    if key is None:
        return UNKEYED
    text = pipeline.name + "\0" + "\0".join(f"{k}={values[k]}" for k in sorted(values))
    return hmac.new(key.value, text.encode(), hashlib.sha256).hexdigest()[:32]

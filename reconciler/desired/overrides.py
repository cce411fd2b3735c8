"""Deployment overrides: what an installation decides over the repository's ``reconciler.yaml``.

The repository says which environments exist and how they are configured; the installation
(the Helm chart's ConfigMap, ``reconciler run --overrides FILE``) says where each one is (region,
role to assume, endpoint) and may tighten or loosen its policy. Overrides only replace values:
they never add an environment, and one naming an environment the repository does not have is
an error, so a renamed environment cannot silently fall back to the controller's own
credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidInputError, ReconcilerError, did_you_mean
from .config import Environment, Settings
from .schemas import validate_document, validator
from .yamldoc import load_yaml


class OverridesError(ReconcilerError):
    """Overrides that do not fit the repository (an environment it does not have)."""


@dataclass(frozen=True)
class Overrides:
    """A parsed overrides file. ``environments`` maps a name to the keys it replaces."""

    source: str = ""
    installation: str | None = None
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with these values in place; raises :class:`OverridesError` when an
        environment named here is not in the repository."""
        unknown = sorted(set(self.environments) - set(settings.environments))
        if unknown:
            guess = did_you_mean(unknown[0], settings.environments)
            raise OverridesError(
                f"{self.source}: environment {', '.join(unknown)} is not in the repository's "
                f"reconciler.yaml (it has {', '.join(settings.environments)}); "
                + (f"{guess} " if guess else "")
                + "fix the name in the overrides or remove it")
        environments = dict(settings.environments)
        for name, values in self.environments.items():
            environments[name] = _environment(environments[name], values)
        return replace(settings, environments=environments,
                       installation=self.installation or settings.installation)


def _environment(env: Environment, values: dict[str, Any]) -> Environment:
    changes: dict[str, Any] = {key: values[key] for key in ("region", "role_arn", "endpoint_url")
                               if key in values}
    # the keys are Policy's fields: overrides.schema.json admits no other
    policy: dict[str, Any] = dict(values.get("policy", {}))
    if "max_delete_percent" in policy:
        policy["max_delete_percent"] = float(policy["max_delete_percent"])
    if policy:
        changes["policy"] = replace(env.policy, **policy)
    if "target" in values:
        changes["target"] = values["target"]
    airflow = values.get("airflow", {})
    if airflow:
        api = airflow.get("api", {})
        fields: dict[str, Any] = {key: airflow[key] for key in
                                  ("dags", "parse_timeout", "aws_conn_id") if key in airflow}
        if "connections" in airflow:
            fields["connections"] = tuple(sorted(airflow["connections"].items()))
        if api:  # an API named here replaces the repository's whole api block
            fields.update(api_url=api.get("url"), api_token_env=api.get("token_env"),
                          mwaa=api.get("mwaa"))
        changes["airflow"] = replace(env.airflow, **fields)
    return replace(env, **changes)


def parse_overrides(content: bytes | str, source: str) -> Overrides:
    """Parse and check an overrides file's content; raises :class:`InvalidInputError` naming
    ``source:line``. (Reading the file is the caller's: this package does no I/O.)"""
    doc = load_yaml(content, source)
    if doc.data is None:
        return Overrides(source=source)
    problems = validate_document(validator("overrides"), doc)
    if problems:
        raise InvalidInputError(problems)
    return Overrides(source=source, installation=doc.data.get("installation"),
                     environments=dict(doc.data.get("environments", {})))

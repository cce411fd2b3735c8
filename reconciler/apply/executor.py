"""Applies an environment's plan, pipeline by pipeline.

The order of calls makes every crash repairable by the next pass and never duplicates a
pipeline: artifacts first (content-addressed, skipped when present), then CreatePipeline
with a uniqueId derived from the desired state and a ``pending`` digest tag, then
PutPipelineDefinition (stopping on ``errored`` with the service's messages), activation, and
the digest, revision and secrets tags last. Replace and delete archive the run history
(instances and attempts, JSON lines) under the pipeline's log prefix before deleting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..desired.definition import CompiledPipeline
from ..errors import ReconcilerError
from ..live.aws import AwsEnvironment, AwsError
from ..live.model import (
    MANAGED_TAGS,
    PENDING,
    TAG_DIGEST,
    TAG_ENVIRONMENT,
    TAG_MANAGED_BY,
    TAG_MANIFEST,
    TAG_PIPELINE,
    TAG_REVISION,
    TAG_SECRETS,
)
from ..plan.diff import anchor_like_live
from ..plan.planner import Action, EnvironmentPlan, PlannedAction
from .secrets import secrets_digest


@dataclass
class ActionResult:
    environment: str
    pipeline: str
    action: Action
    outcome: str  # "applied", "failed" or "skipped"
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pipeline_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"


def _live_id(planned: PlannedAction) -> str:
    """The live pipeline an update, activation, replace or delete acts on."""
    if planned.live is None:
        raise ApplyError(f"{planned.action.value} of {planned.pipeline} has no live pipeline")
    return planned.live.pipeline_id


class ApplyError(ReconcilerError):
    """A pipeline that cannot be applied as planned; the message says why."""


@dataclass
class Applier:
    aws: AwsEnvironment
    files: Mapping[str, bytes]
    secret_values: Mapping[str, Mapping[str, str]]  # pipeline -> {parameter id: value}
    revision: str
    clock: Callable[[], float] = time.monotonic
    after_call: Callable[[str], None] | None = None  # test hook: crash points

    def apply(self, plan: EnvironmentPlan) -> list[ActionResult]:
        results = []
        for planned in plan.actions:
            if not planned.action.changes_something:
                continue
            started = self.clock()
            result = ActionResult(planned.environment, planned.pipeline, planned.action,
                                  "applied", pipeline_id=planned.live.pipeline_id
                                  if planned.live else None)
            try:
                getattr(self, f"_{planned.action.value}")(planned, result)
            except (AwsError, ApplyError) as exc:
                result.outcome = "failed"
                result.messages.append(str(exc))
            result.seconds = round(self.clock() - started, 3)
            results.append(result)
        return results

    # -- actions --------------------------------------------------------------------------------

    def _create(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        self._upload(desired, result)
        result.pipeline_id = self._create_pipeline(desired, result)
        self._put_activate_tag(desired, result.pipeline_id, None, result)

    def _update(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        pipeline_id = _live_id(planned)
        live = self.aws.read_definition(pipeline_id)
        if live is None:
            raise ApplyError(f"{pipeline_id} is gone; the next pass creates it again")
        self._upload(desired, result)
        self._put_activate_tag(desired, pipeline_id, live.objects, result)
        assert planned.live is not None
        stale = [k for k in planned.live.tags if k not in MANAGED_TAGS and
                 k not in dict(desired.tags)]
        self.aws.untag(pipeline_id, stale)

    def _activate(self, planned: PlannedAction, result: ActionResult) -> None:
        self.aws.activate(_live_id(planned))
        self._mark("ActivatePipeline")
        result.messages.append("activated")

    def _replace(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        old = _live_id(planned)
        self._upload(desired, result)
        self._archive_and_delete(planned, result)
        result.pipeline_id = self._create_pipeline(desired, result)
        result.messages.append(f"replaced {old}")
        self._put_activate_tag(desired, result.pipeline_id, None, result)

    def _delete(self, planned: PlannedAction, result: ActionResult) -> None:
        self._archive_and_delete(planned, result)

    # -- steps ----------------------------------------------------------------------------------

    def _desired(self, planned: PlannedAction) -> CompiledPipeline:
        assert planned.desired is not None
        if planned.pipeline not in self.secret_values and planned.desired.secrets:
            raise ApplyError("its secrets could not be read (see the plan's errors)")
        return planned.desired

    def _upload(self, desired: CompiledPipeline, result: ActionResult) -> None:
        uploaded = 0
        for artifact in desired.artifacts:
            content = self.files.get(artifact.path)
            if content is None:
                raise ApplyError(f"{artifact.path} is not in the repository snapshot")
            uploaded += self.aws.upload(artifact.s3_uri, content)
        if uploaded:
            result.messages.append(f"uploaded {uploaded} file(s)")

    def _identity(self, desired: CompiledPipeline) -> dict[str, str]:
        """The config's etl.TAGS and the tags that say the pipeline is ours."""
        return {**dict(desired.tags), TAG_MANAGED_BY: self.aws.installation,
                TAG_ENVIRONMENT: self.aws.env.name, TAG_PIPELINE: desired.name,
                TAG_MANIFEST: desired.manifest}

    def _create_pipeline(self, desired: CompiledPipeline, result: ActionResult) -> str:
        unique_id = (f"{self.aws.installation}:{self.aws.env.name}:{desired.name}:"
                     f"{desired.digest[:20]}")
        pipeline_id = self.aws.create(self.aws.env.name_prefix + desired.aws_name, unique_id,
                                      desired.description,
                                      {**self._identity(desired), TAG_DIGEST: PENDING})
        self._mark("CreatePipeline")
        result.messages.append(f"created {pipeline_id}")
        return pipeline_id

    def _put_activate_tag(self, desired: CompiledPipeline, pipeline_id: str,
                          live_objects, result: ActionResult) -> None:
        api = desired.api_form()
        objects = api["pipelineObjects"]
        if live_objects is not None:
            objects = anchor_like_live(objects, live_objects)
        secrets = self.secret_values.get(desired.name, {})
        values = api["parameterValues"] + [{"id": k, "stringValue": v}
                                           for k, v in sorted(secrets.items())]
        answer = self.aws.put(pipeline_id, objects, api["parameterObjects"], values)
        self._mark("PutPipelineDefinition")
        if answer.get("errored"):
            problems = [f"{e.get('id')}: {m}" for e in answer.get("validationErrors", [])
                        for m in e.get("errors", [])]
            raise ApplyError("AWS refused the definition: " + "; ".join(problems[:10]))
        for warning in answer.get("validationWarnings", []):
            for message in warning.get("warnings", []):
                result.messages.append(f"warning: {warning.get('id')}: {message}")
        self.aws.activate(pipeline_id)
        self._mark("ActivatePipeline")
        self.aws.tag(pipeline_id, {**self._identity(desired), TAG_DIGEST: desired.digest,
                                   TAG_REVISION: self.revision,
                                   TAG_SECRETS: secrets_digest(desired, secrets)})
        self._mark("AddTags")
        result.messages.append(f"definition {desired.digest[:12]} applied and activated")

    def _archive_and_delete(self, planned: PlannedAction, result: ActionResult) -> None:
        pipeline_id = _live_id(planned)
        live = self.aws.read_definition(pipeline_id)
        if live is None:
            result.messages.append(f"{pipeline_id} was already gone")
            return
        log_uri = next((f.get("stringValue") for o in live.objects if o["id"] == "Default"
                        for f in o.get("fields", []) if f["key"] == "pipelineLogUri"), None)
        if not log_uri:
            raise ApplyError(f"{pipeline_id} has no pipelineLogUri to archive its run history "
                             "under; nothing was deleted")
        history = [json.dumps(item, sort_keys=True) for item in self.aws.run_history(pipeline_id)]
        target = f"{log_uri.rstrip('/')}/archive/{pipeline_id}.jsonl"
        self.aws.write(target, ("\n".join(history) + "\n").encode() if history else b"")
        result.messages.append(f"archived {len(history)} run record(s) to {target}")
        self.aws.delete(pipeline_id)
        self._mark("DeletePipeline")
        result.messages.append(f"deleted {pipeline_id}")

    def _mark(self, call: str) -> None:
        if self.after_call is not None:
            self.after_call(call)

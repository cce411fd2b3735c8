"""Applies an environment's plan, pipeline by pipeline.

The order of calls makes every crash repairable by the next pass and never leaves a manifest
without its pipeline or with two:

* create: artifacts (content-addressed, skipped when present), CreatePipeline with a uniqueId
  that depends only on the installation, environment and pipeline (two passes racing on two
  revisions get the same pipeline), tagged ``pending``; PutPipelineDefinition (stopping on
  ``errored`` with the service's messages); ActivatePipeline; the digest, revision and
  secrets tags last.
* replace, create before delete: the new pipeline (its uniqueId names the pipeline it
  replaces), its definition put and accepted, then the old one's run history archived and
  the old one deleted, then the new one activated and tagged. A failure before the delete
  leaves the old pipeline running; a crash anywhere leaves at most a pending duplicate, which
  the next pass resolves.
* delete: run history archived (instances and attempts, JSON lines) under the pipeline's log
  URI, deactivated, deleted.
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
from .secrets import SecretsKey, secrets_digest


@dataclass
class ActionResult:
    environment: str
    pipeline: str
    action: Action
    outcome: str  # "applied", "failed" or "skipped"
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pipeline_id: str | None = None
    # a failure that trying again later can help (throttling, 5xx, no answer), as opposed
    # to one that needs a change (a definition AWS refuses, denied access)
    temporary: bool = False

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"


LEASE_LOST = "LeaseLost"  # the code of reconciler.live.lease.LeaseLost


class ApplyError(ReconcilerError):
    """A pipeline that cannot be applied as planned; the message says why."""


def _live_id(planned: PlannedAction) -> str:
    """The live pipeline an update, activation, replace or delete acts on."""
    if planned.live is None:
        raise ApplyError(f"{planned.action.value} of {planned.pipeline} has no live pipeline")
    return planned.live.pipeline_id


@dataclass
class Applier:
    aws: AwsEnvironment
    files: Mapping[str, bytes]
    secret_values: Mapping[str, Mapping[str, str]]  # pipeline -> {parameter id: value}
    revision: str
    key: SecretsKey | None = None  # the installation's key for the secrets tag
    clock: Callable[[], float] = time.monotonic
    # the QA runner's driver wheels (file name -> content), uploaded for pipelines running it
    wheelhouse: Callable[[], Mapping[str, bytes]] = dict
    # why a pipeline must not be applied now (backing off after failures), or None
    hold: Callable[[str], str | None] = lambda _: None
    stopping: Callable[[], bool] = lambda: False  # shutting down: start no new action
    # before each action: raises an AwsError when the lease is lost (and the lease's own
    # guard checks it again before every write call)
    checkpoint: Callable[[], None] = lambda: None
    # each action's result as soon as it is done (a long apply's progress, in the logs)
    on_result: Callable[[ActionResult], None] = lambda _: None

    def apply(self, plan: EnvironmentPlan) -> list[ActionResult]:
        results = []
        self.kept: set[str] = set()  # pipelines this apply created or updated
        self.present: set[str] = set()  # S3 objects known to be uploaded
        self.stopped_by: AwsError | None = None  # the lease was lost: nothing more is written
        for planned in plan.actions:
            if not planned.will_change:
                continue
            try:
                self.checkpoint()
            except AwsError as exc:
                self.stopped_by = exc
                break
            started = self.clock()
            result = ActionResult(planned.environment, planned.pipeline, planned.action,
                                  "applied", pipeline_id=planned.live.pipeline_id
                                  if planned.live else None)
            held = "shutting down" if self.stopping() else self.hold(planned.pipeline)
            if held is not None:
                result.outcome = "skipped"
                result.messages.append(held)
                results.append(result)
                self.on_result(result)
                continue
            try:
                getattr(self, f"_{planned.action.value}")(planned, result)
            except AwsError as exc:
                if exc.code == LEASE_LOST:  # not the pipeline's failure: no backoff for it
                    result.outcome = "skipped"
                    result.messages.append(f"stopped: {exc.message}")
                    self.stopped_by = exc
                else:
                    result.outcome = "failed"
                    result.temporary = exc.temporary
                    result.messages.append(str(exc))
            except ApplyError as exc:
                result.outcome = "failed"
                result.messages.append(str(exc))
            result.seconds = round(self.clock() - started, 3)
            if result.pipeline_id and planned.action is not Action.DELETE:
                self.kept.add(result.pipeline_id)
            results.append(result)
            self.on_result(result)
            if self.stopped_by is not None:
                break
        return results

    # -- actions --------------------------------------------------------------------------------

    def _create(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        self._upload(desired, result)
        unique_id = f"{self.aws.installation}:{self.aws.env.name}:{desired.name}"
        result.pipeline_id = self._create_pipeline(desired, unique_id, result)
        self._put(desired, result.pipeline_id, None, result)
        self._activate_and_tag(desired, result.pipeline_id, result)

    def _update(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        pipeline_id = _live_id(planned)
        live = self.aws.read_definition(pipeline_id)
        if live is None:
            raise ApplyError(f"{pipeline_id} is gone; the next pass creates it again")
        self._upload(desired, result)
        self._put(desired, pipeline_id, live.objects, result)
        self._activate_and_tag(desired, pipeline_id, result)
        self._drop_stale_tags(planned, desired, pipeline_id)

    def _activate(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        pipeline_id = _live_id(planned)
        self._activate_and_tag(desired, pipeline_id, result)

    def _deactivate(self, planned: PlannedAction, result: ActionResult) -> None:
        self.aws.deactivate(_live_id(planned))
        result.messages.append("deactivated (suspend: true); running attempts finish")

    def _adopt(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        pipeline_id = _live_id(planned)
        self.aws.tag(pipeline_id, self._identity(desired))
        result.messages.append(f"adopted {pipeline_id} as {desired.name}")

    def _replace(self, planned: PlannedAction, result: ActionResult) -> None:
        desired = self._desired(planned)
        old = _live_id(planned)
        self._upload(desired, result)
        unique_id = f"{self.aws.installation}:{self.aws.env.name}:{desired.name}:replaces:{old}"
        new = self._create_pipeline(desired, unique_id, result)
        result.pipeline_id = new
        try:
            self._put(desired, new, None, result)
        except (ApplyError, AwsError) as failure:  # refused, or AWS failing: either way
            try:  # the old pipeline keeps running; leave no pending duplicate
                self.aws.delete(new)
            except AwsError as exc:
                result.messages.append(f"{new} could not be deleted again ({exc}); the next "
                                       f"pass removes it; {old} keeps running")
                raise failure from exc
            result.messages.append(f"deleted {new} again; {old} keeps running")
            raise
        self._archive_and_delete(planned, result)
        self._activate_and_tag(desired, new, result)
        result.messages.append(f"replaced {old}")

    def _delete(self, planned: PlannedAction, result: ActionResult) -> None:
        if _live_id(planned) in self.kept:
            raise ApplyError(f"{_live_id(planned)} is the pipeline this apply just made "
                             f"current for {planned.pipeline}; it is not deleted")
        self._archive_and_delete(planned, result)

    # -- steps ----------------------------------------------------------------------------------

    def _desired(self, planned: PlannedAction) -> CompiledPipeline:
        if planned.desired is None:
            raise ApplyError(f"{planned.action.value} of {planned.pipeline} has no definition")
        if planned.pipeline not in self.secret_values and planned.desired.secrets:
            raise ApplyError("its secrets could not be read (see the plan's errors)")
        return planned.desired

    def _upload(self, desired: CompiledPipeline, result: ActionResult) -> None:
        uploads = []
        for artifact in desired.artifacts:
            content = self.files.get(artifact.path)
            if content is None:
                raise ApplyError(f"{artifact.path} is not in the repository snapshot")
            uploads.append((artifact.s3_uri, content))
        if desired.qa_wheelhouse:
            try:
                wheels = self.wheelhouse()
            except OSError as exc:
                raise ApplyError(f"cannot read the QA runner's wheelhouse "
                                 f"(RECONCILER_WHEELHOUSE): {exc}") from None
            if not wheels:
                result.messages.append(
                    f"warning: no QA runner wheelhouse to upload (RECONCILER_WHEELHOUSE); its "
                    f"QA steps install only if {desired.qa_wheelhouse} holds the drivers' "
                    "wheels already")
            uploads += [(desired.qa_wheelhouse + name, content)
                        for name, content in sorted(wheels.items())]
        uploaded = 0
        for uri, content in uploads:
            if uri not in self.present:
                uploaded += self.aws.upload(uri, content)
                self.present.add(uri)
        if uploaded:
            result.messages.append(f"uploaded {uploaded} file(s)")

    def _identity(self, desired: CompiledPipeline) -> dict[str, str]:
        """The config's etl.TAGS and the tags that say the pipeline is ours."""
        return {**dict(desired.tags), TAG_MANAGED_BY: self.aws.installation,
                TAG_ENVIRONMENT: self.aws.env.name, TAG_PIPELINE: desired.name,
                TAG_MANIFEST: desired.manifest}

    def _create_pipeline(self, desired: CompiledPipeline, unique_id: str,
                         result: ActionResult) -> str:
        pipeline_id = self.aws.create(self.aws.env.name_prefix + desired.aws_name, unique_id,
                                      desired.description,
                                      {**self._identity(desired), TAG_DIGEST: PENDING,
                                       TAG_REVISION: self.revision})
        result.messages.append(f"created {pipeline_id}")
        return pipeline_id

    def _put(self, desired: CompiledPipeline, pipeline_id: str, live_objects,
             result: ActionResult) -> None:
        api = desired.api_form()
        objects = api["pipelineObjects"]
        if live_objects is not None:
            objects = anchor_like_live(objects, live_objects)
        secrets = self.secret_values.get(desired.name, {})
        values = api["parameterValues"] + [{"id": k, "stringValue": v}
                                           for k, v in sorted(secrets.items())]
        answer = self.aws.put(pipeline_id, objects, api["parameterObjects"], values)
        if answer.get("errored"):
            problems = [f"{e.get('id')}: {m}" for e in answer.get("validationErrors", [])
                        for m in e.get("errors", [])]
            raise ApplyError("AWS refused the definition: " + "; ".join(problems[:10]))
        for warning in answer.get("validationWarnings", []):
            for message in warning.get("warnings", []):
                result.messages.append(f"warning: {warning.get('id')}: {message}")

    def _activate_and_tag(self, desired: CompiledPipeline, pipeline_id: str,
                          result: ActionResult) -> None:
        self.aws.activate(pipeline_id)
        secrets = self.secret_values.get(desired.name, {})
        self.aws.tag(pipeline_id, {**self._identity(desired), TAG_DIGEST: desired.digest,
                                   TAG_REVISION: self.revision,
                                   TAG_SECRETS: secrets_digest(desired, secrets, self.key)})
        result.messages.append(f"definition {desired.digest[:12]} applied and activated")

    def _drop_stale_tags(self, planned: PlannedAction, desired: CompiledPipeline,
                         pipeline_id: str) -> None:
        """Tags etl.TAGS no longer gives are removed."""
        live_tags = planned.live.tags if planned.live else {}
        stale = [k for k in live_tags if k not in MANAGED_TAGS and k not in dict(desired.tags)]
        if stale:
            self.aws.untag(pipeline_id, stale)

    def _archive_and_delete(self, planned: PlannedAction, result: ActionResult) -> None:
        pipeline_id = _live_id(planned)
        live = self.aws.read_definition(pipeline_id)
        if live is None:
            result.messages.append(f"{pipeline_id} was already gone")
            return
        log_uri = next((f.get("stringValue") for o in live.objects if o["id"] == "Default"
                        for f in o.get("fields", []) if f["key"] == "pipelineLogUri"), None)
        never_ran = planned.live is not None and planned.live.state == "PENDING"
        if log_uri:
            history = [json.dumps(item, sort_keys=True)
                       for item in self.aws.run_history(pipeline_id)]
            target = f"{log_uri.rstrip('/')}/archive/{pipeline_id}.jsonl"
            self.aws.write(target, ("\n".join(history) + "\n").encode() if history else b"")
            result.messages.append(f"archived {len(history)} run record(s) to {target}")
        elif not never_ran:
            raise ApplyError(f"{pipeline_id} has no pipelineLogUri to archive its run history "
                             "under; nothing was deleted")
        if planned.live is not None and planned.live.state not in ("PENDING", "INACTIVE",
                                                                   "FINISHED"):
            self.aws.deactivate(pipeline_id)
        self.aws.delete(pipeline_id)
        result.messages.append(f"deleted {pipeline_id}")

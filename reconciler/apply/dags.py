"""Carries out the plan of an Airflow environment on its DAG folder and through its API.

- create: the files beside the DAG first, then the DAG file (paused at creation, tagged with
  its owner, pipeline, digest and revision); wait until Airflow has parsed it (an import
  error fails the action with Airflow's message and the file); unpause it and record that
  in its tags. Until the record, the next plan sees "uploaded paused" and finishes the job,
  so a crash anywhere resumes to the same end.
- update: upload over it and wait for Airflow to parse the new file (an import error fails
  the action; the DAG Airflow had keeps running meanwhile, as Airflow does).
- activate / deactivate: unpause / pause (``suspend: true``).
- delete: pause, then remove the file and the files beside it.

The files beside a DAG are content-addressed (``DAG_ID/SHA12/NAME``): one already in the
folder is not written again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..live.airflow import Airflow, DagFolder
from ..live.aws import AwsError
from ..live.model import (
    TAG_ACTIVATED,
    TAG_DIGEST,
    TAG_ENVIRONMENT,
    TAG_MANAGED_BY,
    TAG_MANIFEST,
    TAG_PIPELINE,
    TAG_REVISION,
    TAG_START,
    AirflowDag,
    ImportProblem,
)
from ..plan.dags import DesiredDag
from ..plan.planner import EnvironmentPlan, PlannedAction
from .executor import LEASE_LOST, ActionResult, ApplyError


@dataclass(frozen=True)
class DagUpload:
    """What is written for one DAG: the file's bytes and the files beside it (path in the
    folder -> bytes)."""

    desired: DesiredDag
    body: bytes
    beside: Mapping[str, bytes] = field(default_factory=dict)


@dataclass
class DagApplier:
    folder: DagFolder
    airflow: Airflow
    uploads: Mapping[str, DagUpload]  # by pipeline name
    installation: str
    environment: str
    revision: str
    present: set[str] = field(default_factory=set)  # paths known to be in the folder
    index: str | None = None  # where the index of the environment's files is kept
    indexed: dict[str, Mapping[str, str]] = field(default_factory=dict)  # path -> tags
    parse_timeout: float = 300.0
    poll_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    stopping: Callable[[], bool] = lambda: False
    checkpoint: Callable[[], None] = lambda: None
    on_result: Callable[[ActionResult], None] = lambda _: None
    stopped_by: AwsError | None = None
    written: bool = False  # a file changed since the index was written

    def apply(self, plan: EnvironmentPlan) -> list[ActionResult]:
        results = []
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
            if self.stopping():
                result.outcome = "skipped"
                result.messages.append("shutting down")
            else:
                try:
                    getattr(self, f"_{planned.action.value}")(planned, result)
                except AwsError as exc:
                    result.outcome = "skipped" if exc.code == LEASE_LOST else "failed"
                    result.temporary = exc.temporary
                    result.messages.append(str(exc))
                    if exc.code == LEASE_LOST:
                        self.stopped_by = exc
                except ApplyError as exc:
                    result.outcome = "failed"
                    result.messages.append(str(exc))
            result.seconds = round(self.clock() - started, 3)
            results.append(result)
            self.on_result(result)
            if len(results) % 25 == 0:
                self._write_index()
            if self.stopped_by is not None:
                break
        self._write_index()
        return results

    def _write_index(self) -> None:
        """The index of the files and their tags, for the next pass to read instead of each
        file's metadata. A file written after the index was is read with HeadObject."""
        if self.index is None or not self.written:
            return
        listed = self.folder.list()
        files = {path: {"etag": listed[path], "tags": dict(tags)}
                 for path, tags in sorted(self.indexed.items()) if path in listed}
        self.folder.write_index(self.index, files)
        self.written = False

    # -- the actions ----------------------------------------------------------------------

    def _create(self, planned: PlannedAction, result: ActionResult) -> None:
        errors = self.airflow.import_errors()
        upload = self._upload(planned, activated=False)
        result.pipeline_id = upload.desired.dag_id
        result.messages.append(f"uploaded {self.folder.uri.rstrip('/')}/{upload.desired.path} "
                               "paused")
        self._parsed(upload, None, errors)
        self._unpause(upload)
        result.messages.append("parsed by Airflow; unpaused")

    def _update(self, planned: PlannedAction, result: ActionResult) -> None:
        live = planned.live
        before = self.airflow.dag(live.pipeline_id) if live is not None else None
        errors = self.airflow.import_errors()
        was_active = live is not None and live.tags.get(TAG_ACTIVATED) == "true"
        upload = self._upload(planned, activated=was_active)
        result.pipeline_id = upload.desired.dag_id
        result.messages.append(f"uploaded {upload.desired.path}")
        dag = self._parsed(upload, before.last_parsed if before else None, errors)
        if planned.desired is not None and planned.desired.suspend:
            if not dag.is_paused:
                self._pause(upload)
            result.messages.append("paused (suspend: true)")
        elif not was_active:
            self._unpause(upload)
            result.messages.append("unpaused")

    def _activate(self, planned: PlannedAction, result: ActionResult) -> None:
        upload = self.uploads[planned.pipeline]
        result.pipeline_id = upload.desired.dag_id
        self._parsed(upload, None)
        self._unpause(upload)
        result.messages.append("unpaused")

    def _deactivate(self, planned: PlannedAction, result: ActionResult) -> None:
        upload = self.uploads[planned.pipeline]
        self._pause(upload)
        result.messages.append("paused")

    def _delete(self, planned: PlannedAction, result: ActionResult) -> None:
        live = planned.live
        assert live is not None
        if live.state != "UNPARSED":
            self.airflow.set_paused(live.pipeline_id, True)
        folder = live.pipeline_id + "/"
        beside = [p for p in self.present if p.startswith(folder)]
        self.folder.delete([live.name, *beside])
        self.present.difference_update([live.name, *beside])
        self.indexed.pop(live.name, None)
        self.written = True
        result.messages.append(f"paused; removed {live.name}" +
                               (f" and {len(beside)} file(s) beside it" if beside else ""))

    # -- steps ----------------------------------------------------------------------------

    def _upload(self, planned: PlannedAction, activated: bool) -> DagUpload:
        upload = self.uploads.get(planned.pipeline)
        if upload is None:
            raise ApplyError(f"{planned.pipeline}: no DAG file was translated for it")
        for path, content in sorted(upload.beside.items()):
            if path not in self.present:
                self.folder.put(path, content)
                self.present.add(path)
        tags = self._tags(upload, activated)
        self.folder.put(upload.desired.path, upload.body, tags)
        self.present.add(upload.desired.path)
        self.indexed[upload.desired.path], self.written = tags, True
        return upload

    def _tags(self, upload: DagUpload, activated: bool) -> dict[str, str]:
        pipeline = upload.desired.pipeline
        tags = {TAG_MANAGED_BY: self.installation, TAG_ENVIRONMENT: self.environment,
                TAG_PIPELINE: pipeline.name, TAG_MANIFEST: pipeline.manifest,
                TAG_DIGEST: upload.desired.digest, TAG_REVISION: self.revision}
        if upload.desired.start:
            tags[TAG_START] = upload.desired.start
        if activated:
            tags[TAG_ACTIVATED] = "true"
        return tags

    def _parsed(self, upload: DagUpload, since: str | None,
                errors_before: Mapping[str, ImportProblem] | None = None) -> AirflowDag:
        """Wait until Airflow has parsed the uploaded file: the DAG parsed after ``since``
        (its last parse before the upload; None: the DAG is new), or an import error newer
        than the one before the upload, which fails the action."""
        path, dag_id = upload.desired.path, upload.desired.dag_id
        old = (errors_before or {}).get(path)
        deadline = self.clock() + self.parse_timeout
        while True:
            error = self.airflow.import_errors().get(path)
            if error is not None and (old is None or error.timestamp != old.timestamp):
                raise ApplyError(f"Airflow cannot import {path}: {error.message} (the DAG "
                                 "stays paused; see the file's import error in Airflow)")
            dag = self.airflow.dag(dag_id)
            if dag is not None and (since is None or dag.last_parsed != since) \
                    and error is None:
                return dag
            if self.clock() >= deadline:
                raise ApplyError(f"Airflow has not parsed {path} within "
                                 f"{self.parse_timeout:g} s; the next pass unpauses it once "
                                 "it has (airflow.parse_timeout sets the wait)")
            self.sleep(self.poll_seconds)

    def _pause(self, upload: DagUpload) -> None:
        """Pause the DAG, recording that the reconciler did (a pause it did not make is
        drift)."""
        self.airflow.set_paused(upload.desired.dag_id, True)
        self._retag(upload, activated=False)

    def _unpause(self, upload: DagUpload) -> None:
        self.airflow.set_paused(upload.desired.dag_id, False)
        self._retag(upload, activated=True)

    def _retag(self, upload: DagUpload, activated: bool) -> None:
        tags = self._tags(upload, activated)
        self.folder.retag(upload.desired.path, tags)
        self.indexed[upload.desired.path], self.written = tags, True

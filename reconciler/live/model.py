"""What the controller knows about a live pipeline (a Data Pipeline pipeline, or an Airflow
environment's DAG file): plain data, no client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TAG_PREFIX = "dataduct-reconciler/"
TAG_MANAGED_BY = TAG_PREFIX + "managed-by"
TAG_ENVIRONMENT = TAG_PREFIX + "environment"
TAG_PIPELINE = TAG_PREFIX + "pipeline"
TAG_MANIFEST = TAG_PREFIX + "manifest"
TAG_DIGEST = TAG_PREFIX + "digest"
TAG_REVISION = TAG_PREFIX + "revision"
TAG_SECRETS = TAG_PREFIX + "secrets"
TAG_ACTIVATED = TAG_PREFIX + "activated"  # a DAG file's: "true" once unpaused after upload
TAG_START = TAG_PREFIX + "start"  # a DAG file's: the start it was created with (ISO, UTC)
PENDING = "pending"  # the digest tag of a pipeline whose definition is not applied yet
# Every tag the reconciler writes; AWS allows 10 per pipeline, the rest are etl.TAGS'.
MANAGED_TAGS = (TAG_MANAGED_BY, TAG_ENVIRONMENT, TAG_PIPELINE, TAG_MANIFEST, TAG_DIGEST,
                TAG_REVISION, TAG_SECRETS)


@dataclass(frozen=True)
class LiveDefinition:
    objects: tuple[dict[str, Any], ...]
    parameters: tuple[dict[str, Any], ...] = ()
    values: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class LivePipeline:
    """A pipeline this installation manages in one environment, as DescribePipelines shows it."""

    pipeline_id: str
    name: str
    tags: dict[str, str]
    state: str
    fields: dict[str, str] = field(default_factory=dict)
    definition: LiveDefinition | None = None  # read only when the plan needs it

    @property
    def pipeline(self) -> str:
        return self.tags.get(TAG_PIPELINE, "")

    @property
    def digest(self) -> str:
        return self.tags.get(TAG_DIGEST, PENDING)

    @property
    def manifest(self) -> str:
        return self.tags.get(TAG_MANIFEST, "")

    @property
    def activated(self) -> bool:
        return self.state not in ("PENDING",)


@dataclass
class LiveState:
    """The managed pipelines of one environment, and whether reading them worked."""

    environment: str
    pipelines: list[LivePipeline]


# -- Airflow ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportProblem:
    """Airflow could not import a file: its traceback, and when it last tried."""

    trace: str
    timestamp: str

    @property
    def message(self) -> str:
        """The traceback's last line (``ModuleNotFoundError: No module named ...``)."""
        lines = [line.strip() for line in self.trace.strip().splitlines() if line.strip()]
        return lines[-1] if lines else self.trace


@dataclass(frozen=True)
class AirflowDag:
    """A DAG as Airflow's API shows it."""

    dag_id: str
    file: str  # its file, relative to the DAG folder
    is_paused: bool
    last_parsed: str | None = None


@dataclass(frozen=True)
class LiveDag:
    """One DAG file of the folder that is, or may be, the reconciler's, and Airflow's view."""

    path: str
    etag: str
    tags: Mapping[str, str] | None  # read only where the plan needs them
    dag: AirflowDag | None  # None: Airflow has not parsed it (yet)
    import_error: ImportProblem | None = None


@dataclass(frozen=True)
class LiveFolder:
    """The DAG folder of one Airflow environment and what Airflow made of it."""

    dags: tuple[LiveDag, ...]
    files: frozenset[str]  # every path under the folder (the files beside the DAGs too)
    unindexed: frozenset[str] = frozenset()  # DAG files whose metadata the index lacked


def managed_by(tags: Mapping[str, str] | None, installation: str, environment: str) -> bool:
    """The file was written by this installation for this environment."""
    return bool(tags) and tags is not None and tags.get(TAG_MANAGED_BY) == installation \
        and tags.get(TAG_ENVIRONMENT) == environment

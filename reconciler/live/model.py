"""What the controller knows about a live pipeline: plain data, no client."""

from __future__ import annotations

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

"""The live pipelines of each environment between passes, so a commit reads what it changed.

A full read (ListPipelines of the account, DescribePipelines of every candidate) costs
N/50 + N/25 calls per environment; at 1,000 pipelines and AWS's quota of about one call a
second, that is longer than anyone waits for a merged commit. The controller keeps the
last full read of each environment here, and a pass a webhook triggers (a targeted pass)
reads only what may differ from it:

* the live pipelines whose digest differs from the one git now wants (what the commit
  changed), those of names git no longer wants (deletes, renames), and every duplicate;
* the pipelines this controller wrote since (its own creates, updates and deletes).

Everything else is planned from the kept state; the planner needs nothing more for a
pipeline whose live digest is the desired one. A change made outside git (drift, a pipeline
deleted by hand) and the pipelines' run fields are read by the next full read: the passes
of the interval, and any targeted pass when the kept read is older than ``max_age``. An
environment whose pass failed, or whose lease another writer held, is forgotten: its next
pass reads it in full.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .model import LivePipeline, LiveState

DEFAULT_MAX_AGE = 3600.0  # a kept read older than this is read again in full


@dataclass
class _Kept:
    state: LiveState
    read_at: float  # monotonic seconds of the full read
    written: set[str] = field(default_factory=set)  # pipeline ids written since


class Inventory:
    def __init__(self, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.max_age, self.clock = max_age, clock
        self._kept: dict[str, _Kept] = {}

    def due(self, env: str) -> bool:
        """A full read is due: never read, forgotten, or kept longer than ``max_age``."""
        kept = self._kept.get(env)
        return kept is None or self.clock() - kept.read_at >= self.max_age

    def kept(self, env: str) -> LiveState | None:
        found = self._kept.get(env)
        return found.state if found is not None else None

    def full_read(self, state: LiveState) -> None:
        self._kept[state.environment] = _Kept(state, self.clock())

    def to_read(self, env: str, wanted: dict[str, str], previous: Iterable[str] = ()
                ) -> list[str]:
        """The ids of the kept pipelines of ``env`` a targeted read describes again:
        ``wanted`` maps each desired pipeline to its digest; ``previous`` are names being
        renamed from."""
        kept = self._kept[env]
        old_names = set(previous)
        counts = Counter(p.pipeline for p in kept.state.pipelines)
        ids = set(kept.written)
        for pipeline in kept.state.pipelines:
            name = pipeline.pipeline
            if (name not in wanted or name in old_names or counts[name] > 1
                    or wanted[name] != pipeline.digest):
                ids.add(pipeline.pipeline_id)
        return sorted(ids)

    def refreshed(self, env: str, read: list[str], found: list[LivePipeline]) -> LiveState:
        """The kept state with the pipelines of ``read`` replaced by what was ``found`` of
        them (the ones not found are gone); kept for the next pass and returned."""
        kept = self._kept[env]
        asked = set(read)
        pipelines = [p for p in kept.state.pipelines if p.pipeline_id not in asked]
        state = LiveState(env, sorted([*pipelines, *found], key=lambda p: p.pipeline_id))
        kept.state, kept.written = state, set()
        return state

    def wrote(self, env: str, pipeline_ids: Iterable[str]) -> None:
        """This controller wrote to these pipelines: the next pass reads them again."""
        kept = self._kept.get(env)
        if kept is not None:
            kept.written.update(pid for pid in pipeline_ids if pid)

    def forget(self, env: str | None = None) -> None:
        """Read ``env`` (every environment, without one) in full next time."""
        if env is None:
            self._kept.clear()
        else:
            self._kept.pop(env, None)

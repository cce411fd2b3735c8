"""How far an apply is: actions done of the total, and when it should end at the pace so far.

A first pass over thousands of pipelines takes hours at AWS's quota of about one create a
second; the controller shows its :class:`Progress` in ``/status`` and as
``dataduct_pass_progress_ratio``, the command line as a progress bar on a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    environment: str
    total: int
    started: float  # monotonic seconds
    done: int = 0
    failed: int = 0

    def step(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)

    @property
    def ratio(self) -> float:
        return self.done / self.total if self.total else 1.0

    def remaining_seconds(self, now: float) -> float | None:
        """At the pace so far; None before the first action is done."""
        if not self.done:
            return None
        return (now - self.started) / self.done * (self.total - self.done)

    def to_json(self, now: float, wall: float) -> dict[str, object]:
        """``wall``: the Unix time that ``now`` (monotonic) is."""
        left = self.remaining_seconds(now)
        return {"done": self.done, "total": self.total, "failed": self.failed,
                "ratio": round(self.ratio, 4),
                "estimated_end": round(wall + left, 1) if left is not None else None}

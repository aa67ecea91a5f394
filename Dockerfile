# groundqa API on CPU, with the packaged MiniLM model, the trained reader and the demo index.
# BASE_IMAGE: any Debian-based Python 3.11 image with `python` and `pip` on PATH (for a
# machine that cannot reach Docker Hub, e.g. one built from Debian packages).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    GROUNDQA_DATA_DIR=/data GROUNDQA_MODEL_CACHE=/app/model-cache

# PyTorch's CPU-only wheel index (the default index resolves torch to the CUDA build, several
# GB). The "+cpu" build is asked for by name, so it can only come from that index: if it
# cannot be reached the build fails here instead of silently pulling CUDA (pass
# --build-arg TORCH_INDEX=<a reachable CPU wheel mirror>). torch's own dependencies (filelock,
# sympy, ...) come from PYPI_INDEX, as a mirror may hold torch alone. On arm64, where every
# torch build is CPU-only, pass --build-arg TORCH_VERSION=2.13.0 if the index has no "+cpu".
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PYPI_INDEX=https://pypi.org/simple
ARG TORCH_VERSION=2.13.0+cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
        --extra-index-url "${PYPI_INDEX}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY corpus ./corpus
COPY index ./index
COPY service ./service
COPY eval ./eval
RUN pip install . && useradd --create-home --uid 10001 groundqa \
    && mkdir -p /data /app/demo-index /app/model-cache \
    && chown -R groundqa /data /app/demo-index /app/model-cache
# Started through this script: a data volume that is empty (a new named volume, or an empty
# bind mount, which would otherwise hide anything the image put in /data) gets a copy of the
# demo index and says so; a volume that already holds an index is served as it is.
RUN printf '%s\n' '#!/bin/sh' \
    'data="${GROUNDQA_DATA_DIR:-/data}"' \
    'if [ -z "$(ls -A "$data" 2>/dev/null)" ] && [ "${GROUNDQA_ON_MISSING_INDEX:-fail}" != empty ]; then' \
    '  echo "groundqa: $data is empty: starting it with a copy of the demo index (add your own articles with: groundqa ingest DIR)"' \
    '  cp -R /app/demo-index/. "$data"/ 2>/dev/null || { echo "groundqa: cannot write the demo index to $data: the volume must be writable by uid $(id -u) (chown 10001 on the host directory)" >&2; exit 2; }' \
    'fi' \
    'exec "$@"' > /usr/local/bin/groundqa-entrypoint \
    && chmod 755 /usr/local/bin/groundqa-entrypoint
USER groundqa
# The demo index and the ONNX export of the embedder are built into the image (outside the
# volume, so no mount can hide them).
RUN GROUNDQA_DATA_DIR=/app/demo-index groundqa ingest corpus/articles
VOLUME ["/data"]
EXPOSE 8000
# Loading the models takes 10-30 s on 2 cores; /readyz answers once the index is loaded.
HEALTHCHECK --start-period=60s --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
ENTRYPOINT ["groundqa-entrypoint"]
CMD ["groundqa", "serve", "--host", "0.0.0.0", "--port", "8000"]

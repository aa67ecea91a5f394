# groundqa API on CPU, with the packaged MiniLM model, the trained reader and the demo index.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    GROUNDQA_DATA_DIR=/data GROUNDQA_MODEL_CACHE=/app/model-cache

# PyTorch's CPU-only wheel index (the default index resolves torch to the CUDA build, several
# GB). If it cannot be reached the build fails here instead of silently pulling CUDA: pass
# --build-arg TORCH_INDEX=<a reachable CPU wheel mirror>.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url "${TORCH_INDEX}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY corpus ./corpus
COPY index ./index
COPY service ./service
COPY eval ./eval
RUN pip install . && useradd --create-home --uid 10001 groundqa \
    && mkdir -p /data /app/model-cache && chown -R groundqa /data /app/model-cache
USER groundqa
# The demo index and the ONNX export of the embedder are built into the image. A named volume
# on /data starts as a copy of it; an empty bind mount hides it, and the server then refuses
# to start with a one-line message saying how to ingest (or set GROUNDQA_ON_MISSING_INDEX=empty).
RUN groundqa ingest corpus/articles
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --start-period=60s --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["groundqa", "serve", "--host", "0.0.0.0", "--port", "8000"]

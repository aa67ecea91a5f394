# groundqa API on CPU, with the packaged MiniLM model and the demo index built at image build.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    GROUNDQA_DATA_DIR=/data

WORKDIR /app
# CPU-only torch first, pinned (the default index would pull CUDA wheels).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    || pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY corpus ./corpus
COPY index ./index
COPY service ./service
COPY eval ./eval
RUN pip install .
# Build the demo index into the image; mount a volume on /data to keep your own.
RUN groundqa ingest corpus/articles
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["groundqa", "serve", "--host", "0.0.0.0", "--port", "8000"]

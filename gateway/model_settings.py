"""How models are run and fed, three groups of `Settings` (gateway.settings): inference
(`InferenceSettings`: device, backend, batching, request limits), images
(`ImageSettings`: limits and the URL fetch policy) and memory (`MemorySettings`: the
embedding cache, the memory budget, loaded-model limits)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.backends.base import check_precision
from gateway.setting_fields import (
    auto_or_int,
    bytes_at_least,
    finite_duration,
    int_in,
    one_of,
    parse_bool,
    parse_budget,
    parse_hosts_and_networks,
    parse_ports,
    parse_run_overhead,
    setting,
)
from gateway.units import parse_bytes, parse_duration


def parse_precision(raw: str) -> str:
    """auto, fp32, bf16 or fp16; int8 is refused with the reason (it used to start the server,
    then fail every model load with a 500)."""
    return check_precision(raw.strip().lower())


@dataclass(frozen=True)
class InferenceSettings:
    keep_alive: float = setting(
        "GATEWAY_KEEP_ALIVE",
        lambda raw: parse_duration(raw, bare_number_ok=True),
        "default keep_alive of a loaded model (Go duration or seconds; negative keeps forever)",
        300.0,
        shown="5m",
    )
    auto_pull: bool = setting(
        "GATEWAY_AUTO_PULL",
        parse_bool,
        "pull a registry model's files on first use instead of answering 404",
        False,
    )
    threads: int = setting(
        "GATEWAY_THREADS",
        int_in(0, 1024),  # ONNX Runtime fails every load on a count it cannot create
        "ONNX Runtime intra-op threads per session (0: one per physical core)",
        0,
    )
    spin: bool = setting(
        "GATEWAY_SPIN",
        parse_bool,
        "let ONNX Runtime's idle threads spin between operators (lower latency, more CPU)",
        True,
    )
    device: str = setting(
        "GATEWAY_DEVICE",
        one_of("auto", "cuda", "cpu"),
        "execution device: auto (CUDA when available), cuda or cpu",
        "auto",
    )
    backend: str = setting(
        "GATEWAY_BACKEND",
        one_of("auto", "onnxruntime", "openvino"),
        "compute backend: auto (OpenVINO on CPUs when installed, ONNX Runtime on CUDA), "
        "onnxruntime or openvino; a model's registry entry may override it",
        "auto",
    )
    precision: str = setting(
        "GATEWAY_PRECISION",
        parse_precision,
        "compute precision: auto (bf16 on AMX/AVX512-BF16 CPUs, fp16 on CUDA), fp32 (exact), "
        "bf16, fp16 (CUDA); a model's registry entry may override it",
        "auto",
    )
    graph_cache: bool = setting(
        "GATEWAY_GRAPH_CACHE",
        parse_bool,
        "keep optimized ONNX graphs under <models dir>/.cache/optimized for faster loads",
        True,
    )
    max_inputs: int = setting(
        "GATEWAY_MAX_INPUTS", int_in(1), "most inputs accepted in one request", 2048
    )
    max_input_chars: int = setting(
        "GATEWAY_MAX_INPUT_CHARS",
        int_in(1),
        "longest text accepted, in characters (before tokenization)",
        200_000,
    )
    max_body_bytes: int = setting(
        "GATEWAY_MAX_BODY_BYTES",
        bytes_at_least(1),  # Litestar reads 0 as no limit at all
        "largest request body accepted",
        64 * 1024 * 1024,
    )
    max_batch_size: int = setting(
        "GATEWAY_MAX_BATCH_SIZE", int_in(1), "most inputs in one inference run", 64
    )
    max_batch_tokens: int | None = setting(
        "GATEWAY_MAX_BATCH_TOKENS",
        auto_or_int(1),
        "most padded tokens in one inference run; auto: 4096 on the CPU, 16384 on CUDA",
        None,
        shown="auto",
    )
    release_tokens: int = setting(
        "GATEWAY_RELEASE_TOKENS",
        int_in(0),
        "a CPU run of at least this many padded tokens gives its working memory back once "
        "the model's queue has been idle for a second; 0: runs keep it",
        2048,
    )
    run_overhead_tokens: float | None = setting(
        "GATEWAY_RUN_OVERHEAD_TOKENS",
        parse_run_overhead,
        "padding (in tokens) worth one extra inference run when cutting batches; "
        "auto: timed at each model's load (a registry entry's run_overhead_tokens wins)",
        None,
        shown="auto",
    )
    max_queue: int = setting(
        "GATEWAY_MAX_QUEUE",
        int_in(1),
        "most inputs waiting for one model; beyond it requests are refused with 503/429",
        8192,
    )


@dataclass(frozen=True)
class ImageSettings:
    max_images: int = setting(
        "GATEWAY_MAX_IMAGES", int_in(1), "most images accepted in one request", 64
    )
    image_max_bytes: int = setting(
        "GATEWAY_IMAGE_MAX_BYTES",
        bytes_at_least(1),
        "largest encoded image accepted, inline or fetched (checked while downloading)",
        20 * 1024 * 1024,
        shown="20MiB",
    )
    image_max_pixels: int = setting(
        "GATEWAY_IMAGE_MAX_PIXELS",
        int_in(1),
        "largest decoded image, width x height (decompression bombs are refused)",
        50_000_000,
    )
    image_fetch: bool = setting(
        "GATEWAY_IMAGE_FETCH", parse_bool, "fetch images given as http(s) URLs", True
    )
    image_allow_hosts: tuple[str, ...] = setting(
        "GATEWAY_IMAGE_ALLOW_HOSTS",
        parse_hosts_and_networks,
        "hosts or CIDR networks image URLs may reach even if private (default: public only)",
        (),
    )
    image_allow_ports: tuple[int, ...] | None = setting(
        "GATEWAY_IMAGE_ALLOW_PORTS",
        parse_ports,
        "ports an image URL may use when GATEWAY_IMAGE_ALLOW_HOSTS does not open its host "
        "(allow-listed hosts and networks may use any port); * for any port",
        (80, 443, 8080, 8443),
        shown="80,443,8080,8443",
    )
    image_ca_file: str | None = setting(
        "GATEWAY_IMAGE_CA_FILE",
        str,
        "extra CA bundle (PEM) trusted when fetching https image URLs, e.g. an internal CA",
        None,
    )
    image_connect_timeout: float = setting(
        "GATEWAY_IMAGE_CONNECT_TIMEOUT",
        finite_duration(zero_ok=False),
        "time to connect to an image URL's host",
        5.0,
        shown="5s",
    )
    image_fetch_timeout: float = setting(
        "GATEWAY_IMAGE_FETCH_TIMEOUT",
        finite_duration(zero_ok=False),
        "time for a whole image fetch, redirects included",
        20.0,
        shown="20s",
    )
    image_max_redirects: int = setting(
        "GATEWAY_IMAGE_MAX_REDIRECTS", int_in(0, 10), "redirects followed per image URL", 3
    )


@dataclass(frozen=True)
class MemorySettings:
    cache_bytes: int = setting(
        "GATEWAY_CACHE_BYTES",
        parse_bytes,
        "memory for cached embeddings (repeated inputs skip inference); 0 turns the cache off",
        256 * 1024 * 1024,
        shown="256MiB",
    )
    max_ram: str | None = setting(
        "GATEWAY_MAX_RAM",
        parse_budget,
        "host memory models may use: bytes, 6GiB, or a percentage of the machine; 0 = no cap",
        "80%",
    )
    max_vram: str | None = setting(
        "GATEWAY_MAX_VRAM",
        parse_budget,
        "GPU memory models may use: bytes, 6GiB, or a percentage of the device; 0 = no cap",
        "90%",
    )
    max_loaded_models: int = setting(
        "GATEWAY_MAX_LOADED_MODELS", int_in(0), "most models loaded at once (0: no limit)", 0
    )
    memory_wait: float = setting(
        "GATEWAY_MEMORY_WAIT",
        finite_duration(zero_ok=True),
        "how long a load waits for busy models to free memory before answering 503",
        30.0,
        shown="30s",
    )

"""`python -m bench` (or `make bench`): the gateway against its peers on the same model and inputs.

(a) the gateway over HTTP at several loads (and under other compute settings), (b) raw ONNX
Runtime in-process with ideal batches, (c) sentence-transformers, (d) Infinity over HTTP, (e) an
Ollama-style one-input-at-a-time server, (f) fastembed, (g) raw OpenVINO in-process.
See bench/README.md for the method; `--quick` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import report
from bench.lineup import ALL_SYSTEMS
from bench.models import MODELS, REPO
from bench.run import GATEWAY_LOADS, PEER_LOADS, SHORT_TEXT, Run, log
from bench.systems import Load

# Texts per workload in a full run, per model: sized so that the whole run (3 reps, every
# system) stays under 20 minutes on 2 cores (14 measured); BERT-base costs ~8x MiniLM per token.
FULL_SIZES = {
    "minilm": {"sentences": 768, "passages": 64},
    "bert-base": {"sentences": 160, "passages": 16},
}
QUICK_SIZES = {"sentences": 48, "passages": 8}
WORKLOADS = ("sentences", "passages")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        epilog="systems: raw (b), raw-ov-bf16 / raw-ov-fp32 (g, raw OpenVINO), st (c), "
        "fastembed (f), gateway (a, /api/embed, auto compute), gateway-lean (a, the same "
        "server at 64x1 and one text, driven by bench.lean_load), gateway-openai (a, "
        "/v1/embeddings base64), gateway-ov-fp32 (a2), gateway-exact (a3, ORT fp32), "
        "infinity (d), loop (e)",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="%(default)s")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="%(default)s")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="%(default)s")
    parser.add_argument(
        "--loads",
        default=",".join(GATEWAY_LOADS),
        help="CLIENTSxTEXTS-per-request loads for the gateway (%(default)s); Infinity and the "
        f"loop run those of {','.join(PEER_LOADS)} that are listed",
    )
    parser.add_argument("--reps", type=int, help="reps of every run (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small subsets, 1 rep")
    parser.add_argument("--sentences", type=int, help="use the first N of the 2,000 sentences")
    parser.add_argument("--passages", type=int, help="use the first N of the 300 passages")
    parser.add_argument(
        "--latency-requests", type=int, help="single-text requests per rep (200; --quick: 10)"
    )
    parser.add_argument("--raw-batch", type=int, default=32, help="raw ORT batch (%(default)s)")
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a gateway setting for this run, e.g. GATEWAY_MAX_BATCH_SIZE=32 (repeatable)",
    )
    parser.add_argument(
        "--torch-spin",
        action="store_true",
        help="leave torch's OpenMP threads spinning while idle (its default; see README)",
    )
    parser.add_argument("--min-cos", type=float, default=0.999, help="agreement floor")
    parser.add_argument("--output", type=Path, help="JSON path (default: bench/results/)")
    args = parser.parse_args(argv)
    args.models = _pick(args.models, tuple(MODELS), "model")
    args.workloads = _pick(args.workloads, WORKLOADS, "workload")
    args.systems = _pick(args.systems, ALL_SYSTEMS, "system")
    try:
        args.loads = [Load.parse(x) for x in args.loads.split(",") if x]
    except ValueError:
        parser.error(f"--loads: expected CLIENTSxTEXTS items such as 64x1, got {args.loads!r}")
    if any("=" not in kv for kv in args.gateway_env):
        parser.error("--gateway-env takes KEY=VALUE")
    args.reps = args.reps or (1 if args.quick else 3)
    args.latency_requests = args.latency_requests or (10 if args.quick else 200)
    return args


def _pick(raw: str, known: Sequence[str], what: str) -> list[str]:
    picked = [x.strip() for x in raw.split(",") if x.strip()]
    unknown = [x for x in picked if x not in known]
    if unknown or not picked:
        raise SystemExit(f"bench: unknown {what}(s) {unknown}; choose from {list(known)}")
    return picked


# These tables check pooled vectors of two text models only; the other kinds are elsewhere.
FAST_PATH_NUMERICS = (
    "Not in these tables: cos to fp32 for every model kind (nomic text at all widths, vision, "
    "ColBERT per token, cross-encoder scores) and alone-vs-batch invariance per precision: "
    "`.venv/bin/python -m bench.fast_path_numerics` (about 20 s; bench/README.md)."
)


def sizes(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    out = {}
    for model in args.models:
        default = QUICK_SIZES if args.quick else FULL_SIZES[model]
        out[model] = {w: getattr(args, w) or default[w] for w in WORKLOADS}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.torch_spin:
        # Torch's OpenMP threads spin while idle by default, and when another process holds a
        # core that makes a short torch call 20-50x slower (8 ms -> 200-400 ms measured here).
        # PASSIVE makes them sleep, for sentence-transformers here and for Infinity's server
        # (it inherits the environment). The ONNX Runtime rows do spin (GATEWAY_SPIN's
        # default): the policies differ, see bench/README.md. Set before torch is imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run = Run(args)
    try:
        result = run.execute(sizes(args))
    except BaseException:
        log(f"bench: server logs are in {run.workdir}")
        raise
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or REPO / "bench" / "results" / (
        f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    report.print_report(result, args.min_cos, SHORT_TEXT)
    print(f"\n{FAST_PATH_NUMERICS}")
    print(f"\nJSON: {output}")
    bad = report.disagreements(result, args.min_cos)
    # Infinity is a peer: its failures are reported in the tables, they do not fail the bench.
    failed = [s for s in result["samples"] if s["error"] and s["system"] != "infinity"]
    if bad:
        print("\nVECTORS DISAGREE (cosine below the floor):\n" + "\n".join(bad))
    if failed or result["notes"]:
        print(f"\n{len(failed)} run(s) failed (see 'error' in the JSON); logs in {run.workdir}")
    else:
        shutil.rmtree(run.workdir, ignore_errors=True)
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())

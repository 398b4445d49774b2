"""Where a decode step's GPU time goes: one table from a JAX profiler trace of ``generate``.

For each weights variant (bf16, 2-bit, 1.6-bit: ``benchmarks/decode.py``'s models), fused or
separate projections, and batch size, this compiles a greedy generation of ``--tokens`` tokens,
traces one more run of it (``jax.profiler.trace``, Perfetto JSON) and sums the GPU's kernel
events: kernels launched a token, the GPU's busy time a token (union of kernel intervals), the
trace span a token (first kernel start to last kernel end) and the idle share between kernels,
and busy time by kind: the ternary Pallas kernels (``ternary_*``), dense GEMMs (cuBLAS /
cuDNN), and everything else (XLA fusions: norms, rope, attention, split-K reductions, sampling).
The numbers include the 16-token prefill, spread over the tokens.

Run on a GPU:  python benchmarks/decode_profile.py [--layers 30] [--batch 1,16]
Imports only jax, flax, numpy, yaml and this repository's code (no grain).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import ROOT, build_variants  # noqa: E402

from trilm_jax.inference.generate import generate, prepare_decoding  # noqa: E402

GEMM = re.compile(r"gemm|cublas|cutlass|nvjet|sm\d\d_xmma|cudnn|dot", re.IGNORECASE)


def device_kernel_events(trace: dict) -> tuple[list[dict], list[str]]:
    """The kernel events ('X' phase) of the trace's GPU streams, and the thread names seen.

    A Perfetto trace from ``jax.profiler`` holds one process a device (``/device:GPU:0``...) with
    one thread a CUDA stream plus derived lines (``XLA Ops``, ``XLA Modules``, ``Steps``) that
    repeat the same time under HLO names: only stream threads count."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    gpu = {pid for pid, name in processes.items() if "GPU" in name or "gpu" in name}
    seen = sorted({f"{processes[p]} / {name}" for (p, _), name in threads.items() if p in gpu})
    streams = {key for key, name in threads.items() if key[0] in gpu and "stream" in name.lower()}
    kernels = [
        e
        for e in events
        if e.get("ph") == "X"
        and e.get("pid") in gpu
        and ((e["pid"], e.get("tid")) in streams or not streams)
        and "memcpy" not in e.get("name", "").lower()
        and "memset" not in e.get("name", "").lower()
    ]
    return kernels, seen


def summarize(kernels: list[dict], tokens: int, top: int = 6) -> dict:
    """Per-token counts and times (microseconds) of a list of kernel events."""
    if not kernels:
        return {}
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in kernels)
    busy, end = 0.0, -np.inf
    for start, stop in spans:  # union of intervals
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    span = spans[-1][1] - spans[0][0]
    by_kind: collections.Counter = collections.Counter()
    by_name: collections.Counter = collections.Counter()
    for e in kernels:
        name = e["name"]
        kind = "ternary" if "ternary" in name else "gemm" if GEMM.search(name) else "other"
        by_kind[kind] += float(e["dur"])
        by_name[name] += float(e["dur"])
    return {
        "kernels": len(kernels) / tokens,
        "busy_us": busy / tokens,
        "span_us": span / tokens,
        "idle": 1 - busy / span if span else 0.0,
        **{f"{k}_us": by_kind[k] / tokens for k in ("ternary", "gemm", "other")},
        "top": [(n, t / tokens) for n, t in by_name.most_common(top)],
    }


def profile(model, batch: int, tokens: int, fuse: bool, trace_dir: Path, top: int) -> dict:
    prompt = np.tile(np.arange(1, 17, dtype=np.int32), (batch, 1))

    prepared = prepare_decoding(model, fuse)  # once: see decode.py

    def run():
        return generate(prepared, prompt, tokens, compute_dtype=jnp.bfloat16)

    run()  # compile
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        run()
    path = max(trace_dir.rglob("perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
    with gzip.open(path) as f:
        kernels, seen = device_kernel_events(json.load(f))
    return {**summarize(kernels, tokens, top), "threads": seen}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", type=Path, default=ROOT / "configs/models/spectra-3.9b.yaml")
    ap.add_argument("--layers", type=int, default=30, help="blocks of the preset to build")
    ap.add_argument("--batch", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--tokens", type=int, default=64, help="tokens a traced generation")
    ap.add_argument("--fuse", default="on", help="comma-separated: on, off (see decode.py)")
    ap.add_argument("--variants", default="bf16,2bit,1.6bit", help="comma-separated weights")
    ap.add_argument("--top", type=int, default=0, help="print this many costliest kernels too")
    args = ap.parse_args(argv)
    dev = jax.devices()[0]
    print(f"device {dev.device_kind}, jax {jax.__version__}", flush=True)
    config, variants = build_variants(
        args.preset, args.layers, 16 + args.tokens, tuple(args.variants.split(","))
    )
    print(f"{config.name} shapes, {config.n_layers} layers; per token:", flush=True)
    print(
        f"{'weights':8s} {'fused':>5s} {'batch':>5s} {'kernels':>8s} {'busy us':>8s} "
        f"{'span us':>8s} {'idle':>5s} {'ternary':>8s} {'gemm':>8s} {'other':>8s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (int(v) for v in args.batch.split(",")):
            for fuse in ({"on": True, "off": False}[v] for v in args.fuse.split(",")):
                for name in args.variants.split(","):
                    r = profile(variants[name], batch, args.tokens, fuse, Path(tmp), args.top)
                    label = f"{name:8s} {'yes' if fuse else 'no':>5s} {batch:5d}"
                    if "busy_us" not in r:
                        print(f"{label}  no GPU kernel events; threads: {r['threads']}")
                        continue
                    print(
                        f"{label} {r['kernels']:8.1f} {r['busy_us']:8.1f} {r['span_us']:8.1f} "
                        f"{r['idle']:5.0%} {r['ternary_us']:8.1f} {r['gemm_us']:8.1f} "
                        f"{r['other_us']:8.1f}",
                        flush=True,
                    )
                    if args.top:
                        for kernel, us in r["top"]:
                            print(f"    {us:8.1f} us  {kernel[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a packed-ternary matmul call's time goes on the GPU's own clock: each kernel's
duration and the idle time between them, from a profiler trace, next to the wall-clock time
per call that ``benchmarks/kernels.py`` reports.

The wall-clock timing (many calls dispatched back to back, one wait) cannot tell a kernel that
got faster from a host that could not keep up: if the host takes longer to launch a call than
the GPU to run it (the Mosaic kernel's TMA descriptors are made on the host at every launch),
the GPU waits between calls and the wall clock measures the host. This script traces the same
loop with ``jax.profiler`` (CUPTI on a GPU) and prints, per variant and per call: the
wall-clock time; the host's time to enqueue it (the loop dispatched without a wait); the GPU's
span (first kernel's start to last kernel's end, over the calls); the time the GPU ran
kernels; and each kernel's median duration.

Run on a GPU:  python benchmarks/gpu_timeline.py --shapes 8192x28672 --ms 16 \
    --variants bf16,served,mosaic:128/128/1/2/1/0/1,separate:128/128/1/2/1/0/1
With ``bf16`` among the variants it ends with the speedups over it, on the GPU's clock (busy
time a call) and on the wall clock, and the bytes a second each moved against the measured copy
bandwidth; ``--out`` writes every number as JSON. The issue's acceptance table on both clocks,
in calls under the device's 10-minute limit:
    python benchmarks/gpu_timeline.py --presets large --ms 1,4,16,64,256 \
        --variants bf16,served --budget-seconds 540 --out t.json
Each point (layout, M, variant) took 8-30 s of the GPU machine on the H200 in the calls of
2026-12-02's afternoon (compile, wall clock, host, trace) and 1.5-4 s in its late evening's
(every preset shape, 135 points, in two calls of 50 and 130 s). A point that takes longer than
``--point-seconds`` (150; a kernel that never ends, as a stream-K trial's did) ends the run
with exit status 3 after printing and writing what was measured. ``probe-KIND:TILING`` variants
time the s8 kernel with its step cut down (:data:`PROBES`).
Imports only jax, numpy and the project.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import (  # noqa: E402
    SHAPES,
    _n_sets,
    _random_packed,
    calls_jit,
    copy_bandwidth,
    time_run,
)

from kernels_pallas import layouts, ternary_matmul  # noqa: E402
from kernels_pallas import mosaic_matmul as mm  # noqa: E402
from kernels_pallas.mosaic_matmul import MosaicConfig, mosaic_ternary_matmul  # noqa: E402

PROBES = {
    "tma": "the pipeline's TMA copies alone: no shared-memory load, decode or wgmma",
    "one": "+ the packed tile loaded to registers and one wgmma a step on its raw bytes",
    "raw": "+ every plane's wgmma, on the raw bytes (no decode)",
    "xpro": "x_in_kernel without its prologue (x's rows, scales and sums left unread)",
    "xstep": "x_in_kernel without writing x's tiles (x loaded, scaled and summed)",
}
"""The s8 kernel's step cut down, to time each link of its chain (``probe-KIND:TILING``); the
products are wrong by design. The full step is ``mosaic:TILING``."""


@contextlib.contextmanager
def _probe_patches(kind: str, layout: str):
    """While tracing: the s8 kernel's decode (``mosaic_matmul._int8_decode_fn``) replaced as
    ``PROBES[kind]`` says (``tma`` also drops the shared-memory load)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    if kind in ("xpro", "xstep"):
        with _x_in_kernel_patches(kind):
            yield
        return
    planes = layouts.TRITS_PER_BYTE[layout]
    outs = 1 if kind == "one" else planes
    identity = "\n".join(f"mov.b32 ${i}, ${outs};" for i in range(outs))
    saved_decode, saved_load = mm._int8_decode_fn, plgpu.load
    if kind == "tma":
        mm._int8_decode_fn = lambda layout, shape: lambda w8: ()
        plgpu.load = lambda *args, **kwargs: None
    else:
        mm._int8_decode_fn = lambda layout, shape: mm._s8_tiles_fn(identity, outs, shape)
    try:
        yield
    finally:
        mm._int8_decode_fn, plgpu.load = saved_decode, saved_load


@contextlib.contextmanager
def _x_in_kernel_patches(kind: str):
    """While tracing: ``xpro``: the x_in_kernel prologue (``mosaic_matmul._x_prologue``) only
    sets the scales to 1 and the sums to 0; ``xstep``: the writing of x's tiles
    (``mosaic_matmul._x_store_fn``) does nothing."""
    saved_prologue, saved_store = mm._x_prologue, mm._x_store_fn

    def constants_only(x_gmem, xq, xs, qs, layout, m, m_pad, rows, plan, store):
        for i in range(m_pad):
            xs[i] = jnp.ones((128,), jnp.float32)
            qs[i] = jnp.zeros((128,), jnp.int32)

    if kind == "xpro":
        mm._x_prologue = constants_only
    else:
        mm._x_store_fn = lambda *args: lambda xq, q: None
    try:
        yield
    finally:
        mm._x_prologue, mm._x_store_fn = saved_prologue, saved_store


def probe_fn(kind: str, cfg: MosaicConfig, layout: str):
    """``x, packed_t -> out``: the s8 kernel with its step cut down (:data:`PROBES`), traced
    afresh (not through ``mosaic_ternary_matmul``'s own jit cache, which holds the full step)."""
    if kind not in PROBES:
        raise ValueError(f"probe {kind!r}: expected one of {sorted(PROBES)}")
    if not cfg.int8 or cfg.in_flight or cfg.compute_wgs != 1:
        raise ValueError(
            f"probe-{kind}:{cfg}: probes take the s8 kernel, in_flight 0, one warpgroup"
        )

    def run(x, w):
        with _probe_patches(kind, layout):
            return mosaic_ternary_matmul.__wrapped__(x, w, jnp.float32(0.5), layout, cfg, True)

    return run


def gpu_kernel_events(trace_dir: str) -> list[dict]:
    """The kernel events (``ph == "X"``) of the GPU's stream threads in the perfetto trace that
    ``jax.profiler.trace(..., create_perfetto_trace=True)`` wrote under ``trace_dir``."""
    [path] = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    gpu_pids = {
        e["pid"]
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "process_name"
        and "GPU" in e["args"].get("name", "")
    }
    stream_tids = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["pid"] in gpu_pids
        and "Stream" in e["args"].get("name", "")
    }
    kernels = [
        e
        for e in events
        if e.get("ph") == "X" and (e["pid"], e.get("tid")) in stream_tids and e.get("dur", 0) > 0
    ]
    if not kernels:  # say what the trace holds instead
        names = sorted(
            {e["args"].get("name", "") for e in events if e.get("ph") == "M" and "args" in e}
        )
        print(f"no GPU stream events in {path}; processes and threads: {names[:20]}")
    return kernels


def timeline(events: list[dict], calls: int) -> dict:
    """Per call: the GPU's span and busy time (us) and each kernel name's count and median
    duration."""
    if not events:
        return {"span": float("nan"), "busy": float("nan"), "kernels": {}}
    start = min(e["ts"] for e in events)
    end = max(e["ts"] + e["dur"] for e in events)
    by_name: dict[str, list[float]] = collections.defaultdict(list)
    for e in events:
        by_name[e["name"]].append(e["dur"])
    return {
        "span": (end - start) / calls,
        "busy": sum(e["dur"] for e in events) / calls,
        "kernels": {
            name: (len(d) / calls, statistics.median(d))
            for name, d in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))
        },
    }


def variant_fn(spec: str, layout: str):
    """``bf16`` (jnp.dot on bf16 weights), ``shipped`` (``ternary_matmul`` on the packed bytes
    alone: the Triton kernels), ``served`` (``ternary_matmul`` given the transposed copy too, as
    decoding on a Hopper GPU calls it: the Mosaic kernel where the table or rules say),
    ``mosaic:TILING`` or ``separate:TILING`` (the s8 kernel with its epilogue after it) on the
    transposed bytes, ``probe-KIND:TILING`` (:data:`PROBES`); and which weights it takes (bf16,
    packed, transposed or both)."""
    kind, _, tiling = spec.partition(":")
    if kind.startswith("probe-"):
        return probe_fn(kind.removeprefix("probe-"), MosaicConfig.parse(tiling), layout), "packed_t"
    if kind == "bf16":
        return jnp.dot, "dense"
    if kind == "shipped":
        return (lambda x, w: ternary_matmul(x, w, jnp.float32(0.5), layout)), "packed"
    if kind == "served":

        def served(x, w):
            packed, packed_t = w
            return ternary_matmul(x, packed, jnp.float32(0.5), layout, packed_t=packed_t)

        return served, "both"
    if kind in ("mosaic", "separate"):
        cfg = MosaicConfig.parse(tiling)
        fuse = kind == "mosaic"
        return (
            lambda x, w: mosaic_ternary_matmul(x, w, jnp.float32(0.5), layout, cfg, fuse)
        ), "packed_t"
    raise ValueError(
        f"variant {spec!r}: expected bf16, shipped, served, mosaic:T, separate:T or probe-KIND:T"
    )


@contextlib.contextmanager
def watchdog(seconds: float, on_expiry):
    """Call ``on_expiry()`` from another thread if the body has not finished within ``seconds``
    (0: never). A point whose compile or run never ends (a kernel waiting on a semaphore that
    is never signalled) blocks in C, where no Python signal reaches it: the main program's
    ``on_expiry`` reports what was measured and ends the process."""
    timer = threading.Timer(seconds, on_expiry) if seconds > 0 else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer:
            timer.cancel()


def measure(run, xs, ws, args) -> dict:
    """One variant at one point (``run``, a :func:`calls_jit` jit, on its calls' ``xs`` and
    ``ws``): us a call on the wall clock, the host's to enqueue it, the GPU's span and busy
    time, and each kernel's count and median duration (:func:`timeline`)."""
    wall = time_run(run, xs, ws, args.reps, repeats=args.wall_repeats)
    # past the runs that XLA takes before it instantiates its command buffers
    jax.block_until_ready([run(xs, ws) for _ in range(args.repeats)])
    t0 = time.perf_counter()  # the host's time to enqueue the calls, no wait
    outs = [run(xs, ws) for _ in range(args.repeats)]
    host = (time.perf_counter() - t0) / (args.repeats * len(ws))
    jax.block_until_ready(outs)
    del outs
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            jax.block_until_ready([run(xs, ws) for _ in range(args.repeats)])
        t = timeline(gpu_kernel_events(d), args.repeats * len(ws))
    return dict(wall=wall * 1e6, host=host * 1e6, **t)


def bytes_moved(point: dict) -> int:
    """The fewest bytes a call moves: its weights (bf16 ``2 K N``; packed: the layout's ``R N``)
    read once, x read once and the bf16 product written once."""
    k, n, m = point["k"], point["n"], point["m"]
    if point["variant"] == "bf16":
        weights = 2 * k * n
    else:
        weights = layouts.rows_per_plane(k, point["layout"]) * n
    return weights + 2 * m * k + 2 * m * n


def speedups(points: list[dict], copy_bytes_per_s: float = float("nan")) -> list[dict]:
    """Each non-bf16 point with the bf16 point of its shape and M: the speedups on the GPU's
    clock (bf16's busy time over the variant's) and on the wall clock, and the bytes a second
    each moved on the GPU's clock (:func:`bytes_moved`), also as a share of the measured copy
    bandwidth (``copy_bytes_per_s``, read + written)."""
    bf16 = {(p["k"], p["n"], p["m"]): p for p in points if p["variant"] == "bf16"}
    rows = []
    for p in points:
        base = bf16.get((p["k"], p["n"], p["m"]))
        if p["variant"] == "bf16" or base is None:
            continue
        rate = bytes_moved(p) / (p["busy"] * 1e-6)
        bf16_rate = bytes_moved(base) / (base["busy"] * 1e-6)
        rows.append(
            dict(
                p,
                bf16_busy=base["busy"],
                bf16_wall=base["wall"],
                busy_speedup=base["busy"] / p["busy"],
                wall_speedup=base["wall"] / p["wall"],
                bytes_per_s=rate,
                bf16_bytes_per_s=bf16_rate,
                copy_share=rate / copy_bytes_per_s,
            )
        )
    return rows


def print_speedups(points: list[dict], bw: float) -> None:
    """The closing table (:func:`speedups`), where there is a bf16 point to compare with."""
    table = speedups(points, bw)
    if not table:
        return
    print()
    print(
        "| K x N | layout | M | variant | bf16 busy us | busy us | speedup (GPU clock) "
        "| bf16 wall us | wall us | speedup (wall) | TB/s (GPU clock) | % of copy bw "
        "| bf16 TB/s |"
    )
    print("| --- | --- | ---: | --- |" + " ---: |" * 9)
    for r in table:
        print(
            f"| {r['k']} x {r['n']} | {r['layout']} | {r['m']} | {r['variant']} | "
            f"{r['bf16_busy']:.1f} | {r['busy']:.1f} | {r['busy_speedup']:.2f} | "
            f"{r['bf16_wall']:.1f} | {r['wall']:.1f} | {r['wall_speedup']:.2f} | "
            f"{r['bytes_per_s'] / 1e12:.2f} | {100 * r['copy_share']:.0f} | "
            f"{r['bf16_bytes_per_s'] / 1e12:.2f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--shapes",
        "--shape",
        default=None,
        help="comma-separated KxN (default 8192x28672 where no --presets are given)",
    )
    ap.add_argument(
        "--presets",
        default="",
        help="comma-separated shape presets of kernels.py (" + ", ".join(SHAPES) + "), run "
        "before --shapes' shapes where both are given",
    )
    ap.add_argument("--layouts", default="2bit,1.6bit")
    ap.add_argument("--ms", default="16")
    ap.add_argument(
        "--variants",
        default="bf16,shipped,served",
        help="comma-separated: bf16, shipped (packed bytes alone), served (with the transposed "
        "copy), mosaic:TILING, separate:TILING (TILING as kernels.py's probe takes it), "
        "probe-KIND:TILING (the s8 kernel cut down; KIND: "
        + "; ".join(f"{k}: {v}" for k, v in PROBES.items())
        + ")",
    )
    ap.add_argument("--repeats", type=int, default=10, help="dispatches of the loop traced")
    ap.add_argument("--reps", type=int, default=5, help="wall-clock samples (untraced)")
    ap.add_argument("--kernels", type=int, default=4, help="kernels listed a variant")
    ap.add_argument(
        "--sets",
        type=int,
        default=0,
        help="calls a timed jit (each its own weights; 0: as kernels.py, enough to pass L2)",
    )
    ap.add_argument(
        "--wall-repeats",
        type=int,
        default=20,
        help="dispatches of the jit before one wait, for the wall clock (kernels.py: 20): the "
        "executions in flight at once",
    )
    ap.add_argument(
        "--sink",
        action="store_true",
        help="return one element a call instead of the products, so that they are buffers of "
        "the jit's own, at the same addresses every run, as a model's layers are",
    )
    ap.add_argument("--out", type=Path, default=None, help="write every point as JSON here")
    ap.add_argument(
        "--copy-bw",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the device's copy bandwidth first (kernels.copy_bandwidth), for the "
        "closing table's share of it",
    )
    ap.add_argument(
        "--budget-seconds",
        type=float,
        default=0.0,
        help="start no point after this many seconds (0: no limit), so that a run under a "
        "call's time limit still prints its table (a point took 1.5-30 s on the H200)",
    )
    ap.add_argument(
        "--point-seconds",
        type=float,
        default=150.0,
        help="end the run (exit status 3, after printing and writing what was measured) if a "
        "point takes longer than this, compile included (0: no limit); a point took 1.5-30 s "
        "on the H200",
    )
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    specs = args.variants.split(",")
    for spec in specs:  # refuse a misspelt variant before any weights are made
        variant_fn(spec, "2bit")
    presets = [p for p in args.presets.split(",") if p]
    unknown = [p for p in presets if p not in SHAPES]
    if unknown:
        ap.error(f"--presets: unknown {unknown}; expected some of {sorted(SHAPES)}")
    shapes = [kn for preset in presets for kn in SHAPES[preset]]
    if args.shapes or not presets:
        shapes += [
            tuple(int(v) for v in s.split("x")) for s in (args.shapes or "8192x28672").split(",")
        ]
    shapes = list(dict.fromkeys(shapes))
    ms = [int(v) for v in args.ms.split(",")]
    device = jax.devices()[0]
    print(f"device: {device.device_kind}, jax {jax.__version__}", flush=True)
    bw = copy_bandwidth(args.reps) if args.copy_bw else float("nan")
    print(f"copy bandwidth (read + written): {bw / 1e12:.2f} TB/s", flush=True)
    print(
        "| K x N | layout | M | variant | wall us | host us | GPU span us | GPU busy us "
        "| kernels (a call: count x us) |"
    )
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    points: list[dict] = []
    skipped = []
    stuck: list[str] = []

    def spent() -> bool:
        return bool(args.budget_seconds) and time.perf_counter() - t_start > args.budget_seconds

    def in_budget(k, n, layout, m, spec) -> bool:
        if spent():
            skipped.append(f"{k}x{n} {layout} M={m} {spec}")
            return False
        return True

    def report(k, n, layout, m, spec, t) -> None:
        points.append(dict(k=k, n=n, layout=layout, m=m, variant=spec, **t))
        listed = ", ".join(
            f"{name[:40]}: {count:g} x {dur:.1f}"
            for name, (count, dur) in list(t["kernels"].items())[: args.kernels]
        )
        print(
            f"| {k} x {n} | {layout} | {m} | {spec} | {t['wall']:.1f} | {t['host']:.1f} | "
            f"{t['span']:.1f} | {t['busy']:.1f} | {listed} |",
            flush=True,
        )
        dump()

    def dump() -> None:
        if args.out:
            record = dict(
                device=device.device_kind,
                copy_bytes_per_s=bw,
                points=points,
                not_run=skipped,
                stuck=stuck,
            )
            args.out.write_text(json.dumps(record))

    def give_up(point: str):
        def expired() -> None:
            stuck.append(point)
            print(
                f"point {point} did not finish in {args.point_seconds:g} s (compile or run); "
                "ending the run with what was measured",
                flush=True,
            )
            dump()
            print_speedups(points, bw)
            sys.stdout.flush()
            os._exit(3)

        return expired

    layout_names = args.layouts.split(",")
    for k, n in shapes:
        if spent():  # no weights made for a shape none of whose points will run
            skipped.extend(
                f"{k}x{n} {layout} M={m} {spec}"
                for m in ms
                for layout, spec in [("bf16", "bf16")] * ("bf16" in specs)
                + [(lo, sp) for lo in layout_names for sp in specs if sp != "bf16"]
            )
            continue
        dense = []  # bf16 weights, made once a shape
        if "bf16" in specs:
            dense = [
                jax.random.normal(jax.random.key(20 + i), (k, n), jnp.bfloat16)
                for i in range(args.sets or _n_sets(2 * k * n))
            ]
        weights = {}
        for layout in layout_names:
            rows = layouts.rows_per_plane(k, layout)
            sets = args.sets or _n_sets(rows * n)
            packed = [_random_packed(jax.random.key(10 + i), k, n, layout) for i in range(sets)]
            transposed = [w.T.copy() for w in packed]
            weights[layout] = {
                "packed": packed,
                "packed_t": transposed,
                "both": list(zip(packed, transposed, strict=True)),
            }
        sets = max([len(dense)] + [len(w["packed"]) for w in weights.values()])
        for m in ms:
            xs = [
                jax.random.normal(jax.random.key(100 + i), (m, k), jnp.bfloat16)
                for i in range(sets)
            ]
            if dense and in_budget(k, n, "bf16", m, "bf16"):  # once for every layout
                run = calls_jit(jnp.dot, args.sink)
                with watchdog(args.point_seconds, give_up(f"{k}x{n} bf16 M={m} bf16")):
                    t = measure(run, xs[: len(dense)], dense, args)
                report(k, n, "bf16", m, "bf16", t)
            for layout, held in weights.items():
                for spec in specs:
                    if spec == "bf16" or not in_budget(k, n, layout, m, spec):
                        continue
                    fn, operand = variant_fn(spec, layout)
                    ws = held[operand]
                    run = calls_jit(fn, args.sink)
                    with watchdog(args.point_seconds, give_up(f"{k}x{n} {layout} M={m} {spec}")):
                        t = measure(run, xs[: len(ws)], ws, args)
                    report(k, n, layout, m, spec, t)
        del dense, weights
    if skipped:
        print(
            f"budget of {args.budget_seconds:g} s spent: {len(skipped)} points not run, from "
            f"{skipped[0]}"
        )
    dump()
    print_speedups(points, bw)
    return 0


if __name__ == "__main__":
    sys.exit(main())

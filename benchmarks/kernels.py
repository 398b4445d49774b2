"""Benchmark of the packed ternary matmul kernels against a bf16 ``jnp.dot`` on unpacked weights.

Prints one table and writes JSON (``--out``). For each layer shape (K, N) and batch M it times the
2-bit and 1.6-bit Pallas kernels and a bf16 dot, with fresh random nonzero data, rotating through
enough weight copies that they do not stay in L2 (as a model's layers would not), and at least
``--min-calls`` (24). Each timed jit runs L matmuls back to back and is dispatched 20 times
before one wait, so the GPU stays busy for milliseconds and the host's dispatch cost (a fixed
one an execution, and one a call) hides behind device work; the median over repetitions of the
time per matmul is reported.

``--check`` first compares every kernel variant on the GPU with a float64 numpy result.
``--mosaic`` (Hopper GPUs) also times the Mosaic GPU kernel (``kernels_pallas/mosaic_matmul.py``,
on the packed matrix transposed, made before timing) at every M up to 256: its default tiling,
and with ``--tune`` the alternatives of ``mosaic_candidates``; a second table compares it with
the Triton kernels.
``--byte-matched`` also times the bf16 dot on a matrix of the packed layout's bytes, the
speedup a kernel that reads its bytes as well as cuBLAS would reach (column ``ceil``).
``--tune`` times a few block configurations per point, of the MMA kernel and (M <= 8) of the
CUDA-core kernel, and keeps the fastest (``--table DIR`` writes them as this device's table,
which ``ternary_matmul`` then uses); ``--variants gemv`` narrows that to the device's current
choice plus the CUDA-core candidates, ``--variants listed --configs F.json`` to the current
choice plus a JSON list of BlockConfig fields. Without ``--tune`` the kernels run what
``ternary_matmul`` picks (the device's table in kernels_pallas/tuned, else ``default_config``).

Run on a GPU:  python benchmarks/kernels.py --check --tune --table kernels_pallas/tuned --out r.json
Imports only jax, numpy and kernels_pallas (the GPU image has no grain).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import sys
import time
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels_pallas import layouts  # noqa: E402
from kernels_pallas.mosaic_matmul import (  # noqa: E402
    MosaicConfig,
    default_mosaic_config,
    even_split,
    is_hopper,
    mosaic_ternary_matmul,
    preferred_mosaic_config,
)
from kernels_pallas.triton_gemv import MAX_GEMV_M  # noqa: E402
from kernels_pallas.triton_matmul import (  # noqa: E402
    BlockConfig,
    default_config,
    num_sms,
    preferred_config,
    split_k_for,
    ternary_matmul_pallas,
)
from kernels_pallas.tuning import merge_tables, table_from_benchmark, table_path  # noqa: E402

SHAPES: dict[str, list[tuple[int, int]]] = {
    # configs/models/spectra-3.9b.yaml: q, k, v, o; gate, up and the fused q|k|v; down; the fused
    # gate|up (decoding fuses them, Transformer.split_layers). Tables before 2026-11-24 measured
    # 3072 x 8192 and 8192 x 3072 under this name, not the model's d_ff of 9216.
    "spectra-3.9b": [(3072, 3072), (3072, 9216), (9216, 3072), (3072, 18432)],
    "spectra-1.1-1b": [(2048, 2048), (2048, 8192), (8192, 2048)],
    "large": [(8192, 8192), (8192, 28672)],
    "tiny": [(512, 256)],  # for a CPU smoke test with --interpret
}
MS = (1, 4, 16, 64, 256)
TARGET_BYTES_PER_PASS = 120e6  # > 2x the H100's 50 MB L2
MAX_SETS = 32
DEFAULT_MIN_CALLS = MIN_SETS = 24
"""Fewest calls a timed jit (``--min-calls``). Each execution of a jit costs the host a fixed
time on top of its calls' (on the H200 roughly 40-90 us, presumably XLA updating and
launching its command buffer), which a jit of two or three calls of a 25 us kernel does not
hide: until 2026-12-02 the largest layers ran in such jits (see benchmarks/gpu_timeline.py
and docs/benchmarks.md)."""
INTERPRET = False  # --interpret: run the kernels in Pallas interpret mode (CPU smoke test)


def _random_packed(key: jax.Array, k: int, n: int, layout: str) -> jax.Array:
    """Uniformly random valid packed bytes, made on the device."""
    rows = layouts.rows_per_plane(k, layout)
    if layout == "2bit":
        codes = jax.random.randint(key, (4, rows, n), 0, 3, dtype=jnp.int32)
        byte = codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)
    else:
        v = jax.random.randint(key, (rows, n), 0, 243, dtype=jnp.int32)
        byte = (v * 256 + 242) // 243
    return byte.astype(jnp.uint8)


def sink_of(outs: list[jax.Array]) -> jax.Array:
    """One element of each product, stacked: what a timed jit returns with ``sink``, so that
    the products themselves are the jit's temporary buffers (one small fusion reads them)."""
    return jnp.stack([o[-1, -1] for o in outs])


def calls_jit(fn, sink: bool = False):
    """The timed jit: ``run(xs, ws)`` makes one call of ``fn(x, w)`` a pair, each with its own x
    and w (no operand is shared, so XLA cannot merge calls into one bigger dot or fusion), and
    returns the products (``sink``: :func:`sink_of` them)."""

    @jax.jit
    def run(xs, ws):
        outs = [fn(x, w) for x, w in zip(xs, ws, strict=True)]
        return sink_of(outs) if sink else outs

    return run


def _time_per_call(fn, x_list, w_list, reps: int, repeats: int = 20, sink: bool = False) -> float:
    """Seconds per call of ``fn(x, w)``, median over ``reps`` samples.

    One jit (:func:`calls_jit`) makes L calls. A sample dispatches it ``repeats`` times back to
    back and waits once, so the GPU stays busy (and at full clock) for milliseconds while the
    host's dispatch cost hides behind the device work.
    """
    return time_run(calls_jit(fn, sink), x_list[: len(w_list)], w_list, reps, repeats)


def time_run(run, xs, ws, reps: int, repeats: int = 20) -> float:
    """:func:`_time_per_call` for a jit already made (``run(xs, ws)``, :func:`calls_jit`): seconds
    per call, median over ``reps`` samples of ``repeats`` dispatches and one wait."""
    jax.block_until_ready(run(xs, ws))  # compile + warm up
    jax.block_until_ready([run(xs, ws) for _ in range(repeats)])
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        outs = [run(xs, ws) for _ in range(repeats)]
        jax.block_until_ready(outs)
        samples.append((time.perf_counter() - t0) / (repeats * len(ws)))
    return statistics.median(samples)


def _n_sets(bytes_per_set: float) -> int:
    """Calls per timed jit: together they read at least TARGET_BYTES_PER_PASS of weights, and
    there are at least MIN_SETS of them."""
    sets = min(MAX_SETS, math.ceil(TARGET_BYTES_PER_PASS / bytes_per_set))
    return int(max(MIN_SETS, 2, sets))


def byte_matched_columns(k: int, packed_bytes: int) -> int:
    """Columns of a bf16 ``[K, N']`` matrix holding ``packed_bytes`` (rounded, at least 1)."""
    return max(1, round(packed_bytes / (2 * k)))


def _byte_matched_time(x_list, key: jax.Array, k: int, packed_bytes: int, reps: int) -> float:
    """Seconds of the bf16 dot of x with a ``[K, N']`` matrix of the packed bytes' size: cuBLAS
    reading as many bytes as the kernel must, so ``bf16_s / this`` is the speedup a kernel that
    reads its packed bytes as fast as cuBLAS reads its own would reach (small reads run below
    the bandwidth of large ones, so this is below the 8x / 10x of the bytes alone)."""
    cols = byte_matched_columns(k, packed_bytes)
    sets = _n_sets(2 * k * cols)
    ws = [
        jax.random.randint(jax.random.fold_in(key, i), (k, cols), -1, 2).astype(jnp.bfloat16)
        for i in range(sets)
    ]
    return _time_per_call(lambda x, w: jnp.dot(x, w), x_list, ws, reps)


def copy_bandwidth(reps: int, warm_up_seconds: float = 0.0) -> float:
    """Device copy bandwidth in bytes/s (bytes read + bytes written) of 256 MiB bf16 arrays,
    after keeping the device busy with copies for ``warm_up_seconds`` (in most runs of
    2026-11-23 the first point timed after a short warm-up was up to 1.7x slow)."""
    size = 1 << 16 if INTERPRET else 1 << 27
    bufs = [jax.random.normal(jax.random.key(i), (size,), jnp.bfloat16) for i in range(2)]
    xs = [jnp.bfloat16(i + 1) for i in range(2)]
    start = time.perf_counter()
    while time.perf_counter() - start < warm_up_seconds:
        _time_per_call(lambda s, w: w * s, xs, bufs, 1)
    t = _time_per_call(lambda s, w: w * s, xs, bufs, reps)
    return 2 * size * 2 / t


def check(
    layout: str,
    decode: str,
    weights_left: bool,
    key: jax.Array,
    gemv: bool = False,
    x_int16: bool = False,
    raw_codes: bool = False,
) -> float:
    """Worst ||y - ref|| / ||ref|| over a few shapes (ragged M, split-K, per-column scales)."""
    worst = 0.0
    cases = [
        (1, 256, 256, 1),
        (5, 512, 768, 1),
        (16, 512, 256, 3),
        (37, 3072, 1024, 4),
        (200, 1024, 512, 1),
        (3, 2048, 2048, 8),
    ]
    if INTERPRET:
        cases = cases[:3]
    if gemv:
        cases = [c for c in cases if c[0] <= MAX_GEMV_M] + [(8, 1024, 512, 2)]
    for i, (m, k, n, split) in enumerate(cases):
        kx, kw, ks = jax.random.split(jax.random.fold_in(key, i), 3)
        packed = _random_packed(kw, k, n, layout)
        x = jax.random.normal(kx, (m, k), jnp.bfloat16)
        scale = (
            jax.random.uniform(ks, (n // 128,), jnp.float32, 0.5, 2.0)
            if i % 2
            else jnp.float32(0.731)
        )
        rows = packed.shape[0]
        base = default_config(layout, m, k, n)
        cfg = base.replace(
            decode=decode,
            weights_left=weights_left,
            split_k=split,
            block_k=min(base.block_k, 32 if rows % 64 else 64),
            raw_codes=raw_codes,
        )
        if gemv:
            cfg = cfg.replace(gemv=True, block_n=256, block_k=16, x_int16=x_int16)
        out = ternary_matmul_pallas(x, packed, scale, layout, cfg, INTERPRET)
        trits = layouts.unpack(np.asarray(packed), k, layout).astype(np.float64)
        col_scale = np.asarray(layouts.scale_per_column(scale, n), np.float64)
        ref = np.asarray(x, np.float64) @ (trits * col_scale[None, :])
        got = np.asarray(out, np.float64)
        if not np.all(np.isfinite(got)):
            return float("inf")
        worst = max(worst, float(np.linalg.norm(got - ref) / np.linalg.norm(ref)))
    return worst


def candidates(layout: str, m: int, k: int, n: int, tune: bool) -> list[BlockConfig]:
    """default_config, and with --tune variants aimed at what Nsight Compute measured on the
    default (docs/benchmarks.md): 128-160 registers a thread cap occupancy at 19-25%, and the
    grid fills under one wave at M = 1, so more programs (split-K), smaller steps (fewer live
    registers), deeper pipelining and more warps are tried."""
    if not tune:
        return [preferred_config(layout, m, k, n)]  # what ternary_matmul runs on this device
    base = default_config(layout, m, k, n, num_sms(jax.devices()[0]))
    steps = layouts.rows_per_plane(k, layout) // base.block_k
    out = [base]
    for factor in (2, 4):
        if steps // (base.split_k * factor) >= 2:
            out.append(base.replace(split_k=base.split_k * factor))
    if base.block_k >= 32:
        half = base.replace(block_k=base.block_k // 2)
        out += [half, half.replace(num_stages=5), half.replace(split_k=2 * base.split_k)]
    out.append(base.replace(num_stages=base.num_stages + 1))
    out.append(base.replace(num_warps=8, block_n=2 * base.block_n) if n % 256 == 0 else base)
    out += [cfg.replace(raw_codes=not cfg.raw_codes) for cfg in list(out)]  # raw codes or not
    if m >= 128:
        out.append(base.replace(block_m=128, num_warps=8))
    if m <= MAX_GEMV_M:
        out += gemv_candidates(layout, m, k, n)
    return list(dict.fromkeys(out))


MOSAIC_ALTERNATIVES = (
    MosaicConfig(128, 64, 0, 3, 1),
    MosaicConfig(128, 64, 0, 2, 1),
    MosaicConfig(128, 64, 0, 4, 2),
    MosaicConfig(64, 64, 0, 4, 1),
    MosaicConfig(256, 32, 0, 4, 2),
    MosaicConfig(128, 64, 0, 3, 1, in_flight=1),
    MosaicConfig(128, 64, 0, 4, 2, in_flight=1),
    MosaicConfig(128, 128, 0, 2, 1, int8=True),
    MosaicConfig(128, 64, 0, 3, 1, int8=True),
    MosaicConfig(64, 64, 0, 3, 1, int8=True),
    MosaicConfig(128, 64, 0, 3, 1, in_flight=1, int8=True),
)
"""Tilings ``--mosaic --tune`` times beside the default (split_k 0: :func:`fit_mosaic` picks);
the plane-wise schedule (``in_flight``) won on 1.6-bit 8192 x 28672 at M = 16 and 64 on the
H200 (6-8%) and lost most elsewhere; the s8 MMA (``int8``) won on 1.6-bit 8192 x 28672 at
M = 16 (8-11%) and lost at M = 1 and 64."""


def fit_mosaic(
    cfg: MosaicConfig, layout: str, k: int, n: int, ctas: int = 264
) -> MosaicConfig | None:
    """``cfg`` made to tile ``[K, N]``: block_k halved until it divides R, split_k lowered until
    it divides the steps (0: :func:`~kernels_pallas.mosaic_matmul.even_split` for ``ctas``
    CTAs); None if tile_n does not divide N (or no block_k of 64 or more divides R, for int8)."""
    rows = layouts.rows_per_plane(k, layout)
    bk = cfg.block_k
    while bk > (64 if cfg.int8 else 32) and rows % bk:
        bk //= 2
    if n % cfg.tile_n or rows % bk:
        return None
    steps = rows // bk
    if cfg.split_k == 0:
        split = even_split(steps, n // cfg.tile_n, ctas)
    else:
        split = max(d for d in range(1, cfg.split_k + 1) if steps % d == 0)
    return cfg.replace(block_k=bk, split_k=split)


def mosaic_candidates(layout: str, m: int, k: int, n: int, tune: bool) -> list[MosaicConfig]:
    """The device's choice (its table's tiling, else the rules'), then (``tune``)
    :data:`MOSAIC_ALTERNATIVES` fitted to the shape."""
    device = jax.devices()[0]
    chosen = preferred_mosaic_config(layout, m, k, n, device)
    configs = [chosen or default_mosaic_config(layout, m, k, n, num_sms(device))]
    if tune:
        configs += [c for c in (fit_mosaic(a, layout, k, n) for a in MOSAIC_ALTERNATIVES) if c]
    return list(dict.fromkeys(configs))


def read_listed(path: Path) -> list[dict]:
    """The ``--configs`` file: a JSON list of objects whose keys are BlockConfig fields (plus
    ``"from_current"``); exits with a message naming the file and the bad entry otherwise."""
    known = {f.name for f in dataclasses.fields(BlockConfig)} | {"from_current"}
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"--configs {path}: cannot read a JSON list: {e}") from e
    if not isinstance(entries, list):
        raise SystemExit(f"--configs {path}: expected a JSON list of objects, got {entries!r}")
    for i, entry in enumerate(entries):
        bad = set(entry) - known if isinstance(entry, dict) else {"(not an object)"}
        if bad:
            raise SystemExit(
                f"--configs {path}: entry {i} has unknown keys {sorted(bad)}; "
                f"expected BlockConfig fields {sorted(known)}"
            )
    return entries


def listed_configs(entries: list[dict], current: BlockConfig) -> list[BlockConfig]:
    """BlockConfigs of the ``--configs`` entries; one with ``"from_current": true`` changes only
    its other fields of ``current`` (the device's choice for the point being timed)."""
    out = []
    for entry in entries:
        fields = {k: v for k, v in entry.items() if k != "from_current"}
        base = current if entry.get("from_current") else BlockConfig()
        out.append(base.replace(**fields))
    return out


def gemv_candidates(layout: str, m: int, k: int, n: int) -> list[BlockConfig]:
    """CUDA-core kernel configurations (float: triton_gemv.py; integer, at M = 1:
    triton_dp2a.py): tile widths, rows a step, warps and enough split-K programs for a few per
    SM."""
    rows = layouts.rows_per_plane(k, layout)
    sms = num_sms(jax.devices()[0])
    tiles = [  # (block_n, block_k, warps, x_int16): the better ones of wider sweeps on an H100
        (512, 16, 4, False),
        (256, 32, 4, False),
        (256, 16, 4, False),
        (256, 16, 2, False),
        (512, 8, 8, False),
        (128, 16, 2, False),
    ]
    if m == 1:
        tiles += [(512, 32, 4, True), (1024, 32, 8, True), (256, 32, 4, True), (512, 16, 4, True)]
    out = []
    for bn, bk, warps, x_int16 in tiles:
        if not x_int16:
            bk = max(8, bk // max(1, m // 2))  # the float kernel's accumulators grow with M
        if n % bn or rows % bk:
            continue
        for programs_per_sm in (4, 8):
            split = split_k_for(n // bn, rows // bk, programs_per_sm, sms)
            out.append(
                BlockConfig(
                    block_n=bn,
                    block_k=bk,
                    split_k=split,
                    num_warps=warps,
                    gemv=True,
                    x_int16=x_int16,
                )
            )
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    ap.add_argument("--ms", default=",".join(map(str, MS)), help="comma-separated batch sizes M")
    ap.add_argument("--presets", default=",".join(SHAPES), help="comma-separated shape presets")
    ap.add_argument(
        "--shapes", default=None, help="comma-separated KxN shapes to run instead of --presets"
    )
    ap.add_argument(
        "--layouts", default=",".join(layouts.LAYOUTS), help="comma-separated packed layouts"
    )
    ap.add_argument("--reps", type=int, default=9, help="timed repetitions per jit (median)")
    ap.add_argument(
        "--min-calls",
        type=int,
        default=DEFAULT_MIN_CALLS,
        help="fewest calls a timed jit, each with its own weights (more amortise the host's "
        "fixed cost of an execution; tables before 2026-12-02 night: 2)",
    )
    ap.add_argument("--check", action="store_true", help="check kernels against float64 first")
    ap.add_argument("--check-all", action="store_true", help="check the jnp decode too")
    ap.add_argument("--tune", action="store_true", help="time a few configs per point")
    ap.add_argument("--interpret", action="store_true", help="Pallas interpret mode (CPU)")
    ap.add_argument(
        "--table",
        type=Path,
        default=None,
        help="with --tune: write the fastest configs as this device's table into this directory "
        "(kernels_pallas/tuned to update the shipped one)",
    )
    ap.add_argument(
        "--variants",
        choices=("all", "gemv", "listed"),
        default="all",
        help="with --tune: all candidates, or the device's current choice plus the CUDA-core "
        "kernel's candidates (M <= 8), or the current choice plus --configs",
    )
    ap.add_argument(
        "--configs",
        type=Path,
        default=None,
        help="with --variants listed: a JSON list of BlockConfig fields to time at every point; "
        'an entry with "from_current": true changes only its fields of the current choice',
    )
    ap.add_argument(
        "--byte-matched",
        action="store_true",
        help="also time the bf16 dot on a [K, N'] matrix of the packed layout's bytes (N' = "
        "packed bytes / 2K): the speedup a kernel reading its bytes as fast as cuBLAS would get",
    )
    ap.add_argument(
        "--mosaic",
        action="store_true",
        help="also time the Mosaic GPU kernel (Hopper; M <= 256) on the transposed packed bytes",
    )
    ap.add_argument("--budget-seconds", type=float, default=1e9, help="stop tuning after this")
    ap.add_argument(
        "--warm-up-seconds",
        type=float,
        default=3.0,
        help="keep the GPU busy this long before the first timing (clocks settle)",
    )
    args = ap.parse_args(argv)
    if args.mosaic and not is_hopper(jax.devices()[0]):
        ap.error(f"--mosaic needs a Hopper GPU (compute capability 9.x), not {jax.devices()[0]}")
    for layout in args.layouts.split(","):
        if layout not in layouts.LAYOUTS:
            ap.error(f"--layouts: unknown layout {layout!r}; expected some of {layouts.LAYOUTS}")
    listed = read_listed(args.configs) if args.variants == "listed" and args.configs else []
    if args.variants == "listed" and not args.configs:
        ap.error("--variants listed needs --configs F.json")
    global INTERPRET, MAX_SETS, MIN_SETS
    INTERPRET = args.interpret
    MIN_SETS = args.min_calls
    MAX_SETS = max(MAX_SETS, MIN_SETS)
    if INTERPRET:
        MAX_SETS = MIN_SETS = 2
    t_start = time.time()
    dev = jax.devices()[0]
    result: dict = {
        "device": dev.device_kind,
        "platform": dev.platform,
        "jax": jax.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "min_calls": MIN_SETS,
        "checks": [],
        "rows": [],
    }

    table_before: dict | None = None

    def dump() -> None:
        nonlocal table_before
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
        if args.table and args.tune:
            args.table.mkdir(parents=True, exist_ok=True)
            path = table_path(result["device"], args.table)
            if table_before is None:  # read once: later dumps merge into the same old table
                table_before = json.loads(path.read_text()) if path.is_file() else {}
            table = merge_tables(table_before or None, table_from_benchmark(result))
            path.write_text(json.dumps(table, indent=1) + "\n")

    print(f"device {dev.device_kind} ({dev.platform}), jax {jax.__version__}", flush=True)
    key = jax.random.key(0)
    if args.check:
        for layout in layouts.LAYOUTS:
            for decode in ("asm", "jnp") if args.check_all else ("asm",):
                variants = (False, True, "gemv", "int16", "raw")
                for wl in variants:
                    try:
                        err = check(
                            layout,
                            decode,
                            wl is True,
                            jax.random.fold_in(key, 7),
                            gemv=wl in ("gemv", "int16"),
                            x_int16=wl == "int16",
                            raw_codes=wl == "raw",
                        )
                        status = "ok" if err < 1e-2 else "WRONG"
                    except Exception as e:  # a variant that fails to lower must not stop the run
                        err, status = float("nan"), f"failed: {type(e).__name__}: {e}"[:300]
                    row = dict(
                        layout=layout, decode=decode, weights_left=wl, rel_err=err, status=status
                    )
                    result["checks"].append(row)
                    print(
                        f"check {layout:6s} decode={decode} weights_left={wl!s:5s} "
                        f"rel_err={err:.2e} {status}",
                        flush=True,
                    )
        dump()
    broken = {
        (c["layout"], c["decode"], c["weights_left"])
        for c in result["checks"]
        if c["status"] != "ok"
    }  # weights_left is True, False, "gemv", "int16" (gemv with x_int16) or "raw" (raw_codes)

    bw = copy_bandwidth(args.reps, 0.0 if INTERPRET else args.warm_up_seconds)
    result["copy_bytes_per_s"] = bw
    print(f"copy bandwidth {bw / 1e12:.2f} TB/s (read + write)", flush=True)
    dump()

    ms = [int(v) for v in args.ms.split(",")]
    if args.shapes:
        shapes = [("custom", tuple(int(v) for v in kn.split("x"))) for kn in args.shapes.split(",")]
    else:
        shapes = [(p, kn) for p in args.presets.split(",") for kn in SHAPES[p]]
    for m in ms:  # M outer: the small-M points matter most if the time budget runs out
        for preset, (k, n) in shapes:
            kx, kw = jax.random.split(jax.random.fold_in(key, 1000 * k + n + m))
            x_list = [  # one x per call (see _slope_time)
                jax.random.normal(jax.random.fold_in(kx, p), (m, k), jnp.bfloat16)
                for p in range(MAX_SETS)
            ]
            row: dict = dict(preset=preset, m=m, k=k, n=n)
            n_bf16 = _n_sets(2 * k * n)
            w_bf16 = [
                jax.random.randint(jax.random.fold_in(kw, i), (k, n), -1, 2).astype(jnp.bfloat16)
                for i in range(n_bf16)
            ]
            row["bf16_s"] = _time_per_call(lambda x, w: jnp.dot(x, w), x_list, w_bf16, args.reps)
            del w_bf16
            for layout in args.layouts.split(","):
                rows = layouts.rows_per_plane(k, layout)
                n_sets = _n_sets(rows * n)
                w_sets = [
                    _random_packed(jax.random.fold_in(kw, 100 + i), k, n, layout)
                    for i in range(n_sets)
                ]
                scale = jnp.float32(0.5)
                best: tuple[float, BlockConfig] | None = None
                tune = args.tune and time.time() - t_start < args.budget_seconds
                tried = []
                configs = candidates(layout, m, k, n, tune)
                if tune and args.variants == "gemv":
                    configs = [preferred_config(layout, m, k, n)]
                    configs += gemv_candidates(layout, m, k, n) if m <= MAX_GEMV_M else []
                elif tune and args.variants == "listed":
                    current = preferred_config(layout, m, k, n)
                    configs = [current] + [
                        cfg
                        for cfg in listed_configs(listed, current)
                        if not (cfg.gemv and (m > MAX_GEMV_M or cfg.raw_codes))
                    ]
                    configs = list(dict.fromkeys(configs))
                for cfg in configs:
                    variant = "gemv" if cfg.gemv else cfg.weights_left
                    variant = "int16" if cfg.x_int16 else variant
                    variant = "raw" if cfg.raw_codes and not cfg.gemv else variant
                    if (layout, cfg.decode, variant) in broken:
                        continue
                    try:
                        t = _time_per_call(
                            lambda x, w, cfg=cfg, layout=layout, scale=scale: ternary_matmul_pallas(
                                x, w, scale, layout, cfg, INTERPRET
                            ),
                            x_list,
                            w_sets,
                            args.reps,
                        )
                    except Exception as e:
                        tried.append(
                            dict(config=cfg.__dict__, error=f"{type(e).__name__}: {e}"[:300])
                        )
                        continue
                    tried.append(dict(config=cfg.__dict__, seconds=t))
                    print(f"  {layout} M={m} {k}x{n} {t * 1e6:8.1f} us {cfg}", flush=True)
                    if best is None or t < best[0]:
                        best = (t, cfg)
                key_l = "2bit" if layout == "2bit" else "1p6bit"
                row[f"{key_l}_tried"] = tried
                if best is None:
                    row[f"{key_l}_s"] = None
                    continue
                t, cfg = best
                moved = rows * n + 2 * m * k + 2 * m * n
                if cfg.split_k > 1:
                    moved += 2 * 4 * cfg.split_k * m * n
                row[f"{key_l}_s"] = t
                row[f"{key_l}_config"] = cfg.__dict__
                row[f"{key_l}_bytes_per_s"] = moved / t
                row[f"{key_l}_speedup"] = row["bf16_s"] / t
                if args.mosaic and m <= 256:
                    _time_mosaic(row, key_l, layout, x_list, w_sets, args.reps, args.tune)
                del w_sets
                if args.byte_matched:
                    row[f"{key_l}_matched_s"] = _byte_matched_time(
                        x_list, jax.random.fold_in(kw, 200), k, rows * n, args.reps
                    )
            result["rows"].append(row)
            dump()
            print(_fmt_row(row, bw), flush=True)

    print()
    print(
        f"device {dev.device_kind}, jax {jax.__version__}, {result['date']}, "
        f"copy {bw / 1e12:.2f} TB/s"
    )
    print(_HEADER)
    order = {kn: i for i, (_, kn) in enumerate(shapes)}
    result["rows"].sort(key=lambda r: (order[(r["k"], r["n"])], r["m"]))
    for row in result["rows"]:
        print(_fmt_row(row, bw))
    if args.mosaic:
        print()
        print(_MOSAIC_HEADER)
        for row in result["rows"]:
            if "2bit_mosaic_s" in row or "1p6bit_mosaic_s" in row:
                print(_fmt_mosaic_row(row))
    print(f"total {time.time() - t_start:.0f} s")
    dump()
    return 0


def _time_mosaic(row: dict, key_l: str, layout: str, x_list, w_sets, reps: int, tune: bool):
    """Best Mosaic time of the point into ``row`` (``<layout>_mosaic_s``, its config, and every
    configuration tried)."""
    m, k = x_list[0].shape
    n = w_sets[0].shape[1]
    w_t = [w.T.copy() for w in w_sets]
    tried, best = [], None
    for cfg in mosaic_candidates(layout, m, k, n, tune):
        try:
            t = _time_per_call(
                lambda x, w, cfg=cfg: mosaic_ternary_matmul(x, w, jnp.float32(0.5), layout, cfg),
                x_list,
                w_t,
                reps,
            )
        except Exception as e:  # a tiling that does not fit (shared memory) is reported
            tried.append(dict(config=cfg.__dict__, error=f"{type(e).__name__}: {e}"[:300]))
            continue
        tried.append(dict(config=cfg.__dict__, seconds=t))
        print(f"  mosaic {layout} M={m} {k}x{n} {t * 1e6:8.1f} us {cfg}", flush=True)
        if best is None or t < best[0]:
            best = (t, cfg)
    row[f"{key_l}_mosaic_tried"] = tried
    if best is not None:
        row[f"{key_l}_mosaic_s"] = best[0]
        row[f"{key_l}_mosaic_config"] = best[1].__dict__
    del w_t


_MOSAIC_HEADER = (
    f"{'shape':>12s} {'M':>4s} | {'bf16 us':>8s} | {'2bit us':>8s} {'x':>5s} {'mosaic':>8s} "
    f"{'x':>5s} | {'1.6b us':>8s} {'x':>5s} {'mosaic':>8s} {'x':>5s}"
)


def _fmt_mosaic_row(row: dict) -> str:
    """bf16, the Triton kernels' time and speedup, the Mosaic kernel's time and speedup."""
    parts = []
    for name in ("2bit", "1p6bit"):
        cells = []
        for key in (f"{name}_s", f"{name}_mosaic_s"):
            t = row.get(key)
            cells.append(
                f"{'-':>8s} {'':>5s}" if t is None else f"{t * 1e6:8.1f} {row['bf16_s'] / t:5.2f}"
            )
        parts.append(" ".join(cells))
    shape = f"{row['k']}x{row['n']}"
    return f"{shape:>12s} {row['m']:4d} | {row['bf16_s'] * 1e6:8.1f} | {parts[0]} | {parts[1]}"


_HEADER = (
    f"{'shape':>12s} {'M':>4s} | {'bf16 us':>8s} {'TB/s':>5s} | {'2bit us':>8s} {'x':>5s} "
    f"{'TB/s':>5s} {'%bw':>4s} {'ceil':>5s} | {'1.6b us':>8s} {'x':>5s} {'TB/s':>5s} "
    f"{'%bw':>4s} {'ceil':>5s}"
)
"""``ceil``: with --byte-matched, bf16 time over that of the bf16 dot on the packed bytes'
size (see ``_byte_matched_time``)."""


def _fmt_row(row: dict, bw: float) -> str:
    """One table line: times, speedups over bf16, the bytes each moved a second (bf16: its
    weights; kernels: packed weights, x, output and split-K partials) and that as a share of the
    copy bandwidth ``bw`` (no ceiling where the bf16 dot streams faster, as on the H200), and
    with --byte-matched the speedup of cuBLAS on the packed bytes' size (``ceil``)."""

    def part(name: str) -> str:
        matched = row.get(f"{name}_matched_s")
        ceil = f"{row['bf16_s'] / matched:5.2f}" if matched else f"{'-':>5s}"
        t = row.get(f"{name}_s")
        if t is None:
            tried = f"{name}_tried" in row
            return f"{'fail' if tried else '-':>8s} {'':>5s} {'':>5s} {'':>4s} {ceil}"
        rate, speedup = row[f"{name}_bytes_per_s"], row[f"{name}_speedup"]
        return f"{t * 1e6:8.1f} {speedup:5.2f} {rate / 1e12:5.2f} {rate / bw * 100:4.0f} {ceil}"

    shape = f"{row['k']}x{row['n']}"
    bf16_rate = 2 * row["k"] * row["n"] / row["bf16_s"]
    return (
        f"{shape:>12s} {row['m']:4d} | {row['bf16_s'] * 1e6:8.1f} {bf16_rate / 1e12:5.2f} | "
        f"{part('2bit')} | {part('1p6bit')}"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)

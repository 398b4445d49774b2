"""How fast can a Pallas (Triton) kernel read a packed weight matrix? A probe, not a kernel.

The M = 1 kernels stream their packed weights at about 2 TB/s on an H100 and an H200 alike,
while cuBLAS's bf16 dot reads at 4.1 TB/s on the H200. This script separates the access pattern
from the arithmetic: each kernel here reads the packed matrix (as uint32 words) with the same
tiling as the CUDA-core kernels (a ``[block_k, block_n]`` tile a loop step, split-K programs
over K), adds the words into int32 sums (one instruction a word) and writes split-K partials
that one XLA reduction adds, as ``ternary_matmul`` does. Beside them: XLA's own column sum and a
copy of the same words, and the shipped 2-bit integer kernel on the same bytes.

Measured (NVIDIA H200, jax 0.11.2, 2026-12-01, docs/benchmarks.md): the best tilings read the
58.7 MB of 8192 x 28672 in 19.5-22 us (2.7-3.0 TB/s), cuBLAS's bf16 dot on a matrix of the same
bytes took 23-28 us, and the shipped integer kernel the read's time plus 8-10 us.

Run on a GPU:  python benchmarks/read_probe.py [--k 8192 --n 28672]
Imports only jax, numpy and kernels_pallas.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kernels import (  # noqa: E402
    _n_sets,
    _random_packed,
    _time_per_call,
    byte_matched_columns,
)
from kernels_pallas.triton_matmul import (  # noqa: E402
    num_sms,
    preferred_config,
    split_steps,
    ternary_matmul_pallas,
)


class Tile(NamedTuple):
    """One read kernel: packed rows and bytes of columns a step, warps, programs per SM (split-K
    follows), Triton pipeline stages (see _pipelined) and a load hint."""

    bk: int
    bn_bytes: int
    warps: int = 4
    per_sm: int = 8
    stages: int = 1
    hint: str = ""  # "", "evict_first", or a cache modifier such as ".cg"


TILES = [
    Tile(32, 256),
    Tile(64, 256),
    Tile(16, 1024),
    Tile(8, 2048),
    Tile(32, 256, per_sm=16),
    Tile(64, 256, hint="evict_first"),
    Tile(16, 1024, hint="evict_first"),
    Tile(64, 256, hint=".cg"),
    Tile(16, 1024, hint=".cg"),
    Tile(64, 256, per_sm=4),
    Tile(64, 256, per_sm=12),
    Tile(32, 512, warps=2, per_sm=16),
    Tile(64, 1024, warps=8, per_sm=1000),  # one step a program
    Tile(128, 512, warps=8, per_sm=1000),
    Tile(64, 256, per_sm=2, stages=3),
    Tile(16, 1024, per_sm=2, stages=3),
    Tile(16, 1024, per_sm=4, stages=2, hint="evict_first"),
]
PIPELINED_LOOPS: list[str] = []  # kernels whose loop _pipelined marked
INTERPRET = False  # --interpret: a CPU smoke test of the probe itself


def _pipelined() -> None:
    """Give the top-level loop of every Pallas Triton kernel named ``..._stagesN`` the loop
    attribute ``tt.num_stages = N``, which makes Triton pipeline its loads through shared
    memory (``cp.async``) although they feed no dot. Private API: a probe only."""
    from jax._src.lib.mlir import ir
    from jax._src.pallas.triton import lowering

    original = lowering.lower_jaxpr_to_triton_module
    if getattr(original, "_stages", False):
        return

    def lower(*args, **kwargs):
        result = original(*args, **kwargs)
        module = result.module
        name = ir.StringAttr(module.operation.attributes["sym_name"]).value
        if "_stages" in name:
            stages = int(name.rsplit("_stages", 1)[1].split("_")[0])
            with module.context:
                for func in module.body.operations:
                    for block in func.regions[0].blocks:
                        for op in block.operations:
                            if op.operation.name == "scf.for":
                                op.operation.attributes["tt.num_stages"] = ir.IntegerAttr.get(
                                    ir.IntegerType.get_signless(32), stages
                                )
                                PIPELINED_LOOPS.append(name)
        return result

    lower._stages = True
    lowering.lower_jaxpr_to_triton_module = lower


def _read_kernel(
    w_ref, o_ref, *, bk: int, bnw: int, steps_per_split: int, total_steps: int, hint: str
):
    pid_n, pid_s = pl.program_id(0), pl.program_id(1)
    n0 = pl.multiple_of(pid_n * bnw, bnw)
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)

    def body(i, acc):
        r0 = pl.multiple_of((first + i) * bk, bk)
        tile = w_ref.at[pl.ds(r0, bk), pl.ds(n0, bnw)]
        if hint == "evict_first":
            return acc + plgpu.load(tile, eviction_policy="evict_first")
        if hint:
            return acc + plgpu.load(tile, cache_modifier=hint)
        return acc + tile[...]

    acc = lax.fori_loop(0, count, body, jnp.zeros((bk, bnw), jnp.int32))
    o_ref[pid_s, pl.ds(n0, bnw)] = jnp.sum(acc, axis=0)


def read_sum(w32: jax.Array, tile: Tile, sms: int) -> tuple[jax.Array, int]:
    """Column sums of the int32 words ``w32 [R, N/4]`` through one tiled Pallas read, and the
    split-K it used."""
    bk, bn_bytes, warps, per_sm, stages, hint = tile
    rows, nw = w32.shape
    bnw = bn_bytes // 4
    tiles = nw // bnw
    total_steps = rows // bk
    split, steps_per_split = split_steps(
        total_steps, max(1, min(total_steps, math.ceil(per_sm * sms / tiles)))
    )
    kernel = functools.partial(
        _read_kernel,
        bk=bk,
        bnw=bnw,
        steps_per_split=steps_per_split,
        total_steps=total_steps,
        hint=hint,
    )
    parts = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((split, nw), jnp.int32),
        grid=(tiles, split),
        name=f"read_probe_stages{stages}" if stages > 1 else "read_probe",
        compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=max(stages, 1)),
        interpret=INTERPRET,
    )(w32)
    return parts.sum(axis=0), split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--n", type=int, default=28672)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--interpret", action="store_true", help="CPU smoke test (no timing)")
    args = parser.parse_args(argv)
    global INTERPRET
    INTERPRET = args.interpret
    device = jax.devices()[0]
    sms = num_sms(device)
    k, n = args.k, args.n
    rows = k // 4
    nbytes = rows * n
    sets = _n_sets(nbytes)
    keys = jax.random.split(jax.random.key(0), sets)
    packed = [_random_packed(key, k, n, "2bit") for key in keys]
    words = [lax.bitcast_convert_type(p.reshape(rows, n // 4, 4), jnp.int32) for p in packed]
    xs = [jax.random.normal(key, (1, k), jnp.bfloat16) for key in keys]
    dummies = [jnp.int32(0)] * sets
    print(
        f"{device.device_kind}, jax {jax.__version__}: {rows} x {n} packed bytes "
        f"({nbytes / 1e6:.1f} MB), {sets} copies a timed call"
    )
    print("| read | us | TB/s |")
    print("| --- | ---: | ---: |")

    def row(name: str, seconds: float, moved: float) -> None:
        print(f"| {name} | {seconds * 1e6:.1f} | {moved / seconds / 1e12:.2f} |", flush=True)

    t = _time_per_call(lambda _, w: jnp.sum(w, axis=0), dummies, words, args.reps)
    row("XLA column sum (int32 words)", t, nbytes)
    t = _time_per_call(lambda _, w: jnp.sum(w, axis=1), dummies, words, args.reps)
    row("XLA row sum (int32 words)", t, nbytes)
    t = _time_per_call(lambda _, w: w + 1, dummies, words, args.reps)
    row("XLA copy (w + 1, read + written)", t, 2 * nbytes)
    cols = byte_matched_columns(k, nbytes)  # cuBLAS on a bf16 matrix of the same bytes
    dense = [jax.random.normal(key, (k, cols), jnp.bfloat16) for key in keys]
    t = _time_per_call(jnp.dot, xs, dense, args.reps)
    row(f"bf16 dot, M = 1, {k} x {cols} (same bytes)", t, nbytes)
    del dense
    cfg = preferred_config("2bit", 1, k, n)
    t = _time_per_call(
        lambda x, p: ternary_matmul_pallas(x, p, jnp.float32(0.5), "2bit", cfg, INTERPRET),
        xs,
        packed,
        args.reps,
    )
    row(
        f"shipped 2-bit M = 1 kernel ({cfg.block_k} x {cfg.block_n}, split {cfg.split_k}, "
        f"{cfg.num_warps} warps)",
        t,
        nbytes,
    )
    if not INTERPRET:
        _pipelined()
    for tile in TILES:
        label = f"tile {tile.bk} x {tile.bn_bytes} B, {tile.warps} warps" + "".join(
            [
                f", {tile.stages} stages" if tile.stages > 1 else "",
                f", {tile.hint}" * bool(tile.hint),
            ]
        )
        try:
            sums, split = read_sum(words[0], tile, sms)
            if not bool(jnp.array_equal(sums, jnp.sum(words[0], axis=0))):
                print(f"| {label}: wrong sums | | |", flush=True)
                continue
            t = _time_per_call(
                lambda _, w, tile=tile: read_sum(w, tile, sms)[0], dummies, words, args.reps
            )
        except Exception as e:  # noqa: BLE001 - a probe reports and goes on
            print(f"| {label} | failed: {type(e).__name__} | |", flush=True)
            continue
        row(f"{label}, split {split}", t, nbytes)
    print(f"loops given tt.num_stages: {len(PIPELINED_LOOPS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

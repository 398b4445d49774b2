"""Prototype of an int8-MMA kernel for M of a few to a few hundred rows, with its check and timing.

Not a product kernel: ``kernels_pallas`` does not call it, because on the H100 it was slower than
the bf16 MMA kernel (docs/benchmarks.md, "Three more routes"). It keeps the measured route runnable.

The bf16 MMA kernel (``triton_matmul.py``) decodes every weight into a bf16 trit and moves 2
bytes a weight through shared memory into the MMA's operand registers. This one feeds the tensor
cores int8 instead:

- Weights: 2-bit plane j's codes ``c = t + 1`` are one shift and one AND of 4 packed bytes;
  1.6-bit uses ``m_j = q * 3**j mod 256`` (``triton_dp2a.WEIGHT_PLANES``: no digit extraction),
  stored as the signed byte ``m_j - 128`` because the MMA takes signed int8 only.
- Activations: each program quantizes its x tile to int16 with one float32 scale per row (the
  largest ``|x|`` of its K-range, as in ``triton_dp2a.py``) and splits each value into a high and
  a low signed byte, ``q = 256 * hi + lo``: two int8 MMAs per plane give the exact int32 products
  of 16-bit x and the weights.
- 2-bit: the ``-1`` of ``t = c - 1`` is a sum over x alone, subtracted once at the end. 1.6-bit:
  the ``-128`` of the bytes and the ``-1`` of the trits cancel exactly (see the end of
  :func:`imma_kernel`). Sums stay int32 (exact) until the final scale.
- ``n_major``: the packed matrix stored transposed (``[N, R]``), so that the bytes of a column
  are contiguous along K, the order the int8 MMA wants its operands in.

Run on a GPU:  python benchmarks/imma_probe.py
Imports only jax, numpy and kernels_pallas.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import _random_packed, _time_per_call  # noqa: E402

from kernels_pallas import layouts  # noqa: E402
from kernels_pallas.triton_dp2a import WEIGHT_PLANES, rounded_int  # noqa: E402
from kernels_pallas.triton_matmul import (  # noqa: E402
    BlockConfig,
    preferred_config,
    split_steps,
    ternary_matmul_pallas,
    write_tile,
    x_tile_loader,
)

X_MAX = {"2bit": 16383.0, "1.6bit": 8159.0}
"""Largest |quantized x|. 1.6-bit multiplies bytes by ``x'_j = 3 x_j - x_{j-1}`` (up to
4 * 8159 = 32636), whose high byte ``(x' + 128) >> 8`` must stay a signed byte."""


def _asm_2bit_codes(j: int) -> str:
    shift = [f"shr.b32 t, $1, {2 * j};"] if j else ["mov.b32 t, $1;"]
    return "\n".join(["{", ".reg .b32 t;", *shift, "and.b32 $0, t, 0x03030303;", "}"])


def _asm_1p6bit_bytes(j: int) -> str:
    """``(q * 3**j mod 256) - 128`` of 4 bytes: two bytes a register in 16-bit lanes (q * 243 <
    2**16: no carry between lanes), the low byte of each lane gathered back, the top bit flipped
    (as a signed byte, ``m ^ 0x80 = m - 128``)."""
    if j == 0:
        return "xor.b32 $0, $1, 0x80808080;"
    return "\n".join(
        [
            "{",
            ".reg .b32 lo, hi, z, c;",
            "mov.b32 z, 0;",
            "prmt.b32 lo, $1, z, 0x4140;",
            "prmt.b32 hi, $1, z, 0x4342;",
            f"mul.lo.u32 lo, lo, {3**j};",
            f"mul.lo.u32 hi, hi, {3**j};",
            "prmt.b32 c, lo, hi, 0x6420;",
            "xor.b32 $0, c, 0x80808080;",
            "}",
        ]
    )


IMMA_ASM_PLANES: dict[str, list[str]] = {
    "2bit": [_asm_2bit_codes(j) for j in range(4)],
    "1.6bit": [_asm_1p6bit_bytes(j) for j in range(WEIGHT_PLANES["1.6bit"])],
}
"""PTX turning 4 packed bytes into 4 signed weight bytes of plane j (2-bit: the codes ``c``;
1.6-bit: ``m_j - 128``), tested on CPU by the emulator in test_kernels_ptx_decode.py."""


def weight_bytes_jnp(wq: jax.Array, layout: str, j: int) -> jax.Array:
    """Plane j's signed weight bytes with jnp operations (interpret mode, other GPUs)."""
    q = wq.astype(jnp.int32)
    if layout == "2bit":
        return ((q >> (2 * j)) & 3).astype(jnp.int8)
    return (((q * 3**j) & 0xFF) - 128).astype(jnp.int8)


def _weight_bytes_asm(wq: jax.Array, layout: str, j: int) -> jax.Array:
    [out] = plgpu.elementwise_inline_asm(
        IMMA_ASM_PLANES[layout][j],
        args=[wq],
        constraints="=r,r",
        pack=4,
        result_shape_dtypes=[jax.ShapeDtypeStruct(wq.shape, jnp.int8)],
    )
    return out


def _split(q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``q = 256 * hi + lo`` with both halves signed bytes (``|q| <= 32639``)."""
    hi = (q + 128) >> 8
    return hi.astype(jnp.int8), (q - (hi << 8)).astype(jnp.int8)


def imma_kernel(
    x_ref,
    w_ref,
    s_ref,
    o_ref,
    *,
    layout: str,
    m: int,
    k: int,
    rows: int,
    cfg: BlockConfig,
    steps_per_split: int,
    total_steps: int,
    scale_columns: bool,
    n_major: bool = False,
):
    """One ``[block_m, block_n]`` output tile over one K-range; same grid, operands and split-K
    partial sums as ``triton_matmul._kernel``."""
    bm, bn, bk = cfg.block_m, cfg.block_n, cfg.block_k
    planes = layouts.TRITS_PER_BYTE[layout]
    pid_n, pid_m, pid_s = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    n0 = pl.multiple_of(pid_n * bn, bn)
    m0 = pid_m * bm
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)
    weight_bytes = _weight_bytes_asm if cfg.decode == "asm" else weight_bytes_jnp
    load_tile = x_tile_loader(x_ref, m=m, k=k, rows=rows, m0=m0, bm=bm, bk=bk)

    def load_x(j: int, r0: jax.Array) -> jax.Array:
        return load_tile(j, r0).astype(jnp.float32)

    def amax_body(i, amax):
        r0 = pl.multiple_of((first + i) * bk, bk)
        for j in range(planes):
            amax = jnp.maximum(amax, jnp.max(jnp.abs(load_x(j, r0)), axis=1))
        return amax

    amax = lax.fori_loop(0, count, amax_body, jnp.zeros((bm,), jnp.float32))
    scale = jnp.where(amax > 0, amax / X_MAX[layout], 1.0)
    inverse = (1.0 / scale)[:, None]

    def quantized(j: int, r0: jax.Array) -> jax.Array:
        return rounded_int(load_x(j, r0) * inverse)

    def dots(acc_hi, acc_lo, xq, wj):
        hi, lo = _split(xq)
        dims = (((1,), (1 if n_major else 0,)), ((), ()))
        acc_hi += lax.dot_general(hi, wj, dims, preferred_element_type=jnp.int32)
        acc_lo += lax.dot_general(lo, wj, dims, preferred_element_type=jnp.int32)
        return acc_hi, acc_lo

    def body(i, carry):
        acc_hi, acc_lo, x_sum = carry
        r0 = pl.multiple_of((first + i) * bk, bk)
        cols, ks = pl.ds(n0, bn), pl.ds(r0, bk)
        wq = w_ref[cols, ks] if n_major else w_ref[ks, cols]
        xq = [quantized(j, r0) for j in range(planes)]
        for j in range(WEIGHT_PLANES[layout]):
            if layout == "2bit":
                xj = xq[j]
            else:  # x'_j = 3 x_j - x_{j-1} (triton_dp2a.WEIGHT_PLANES)
                xj = (3 * xq[j] if j < planes else 0) - (xq[j - 1] if j else 0)
            acc_hi, acc_lo = dots(acc_hi, acc_lo, xj, weight_bytes(wq, layout, j))
        if layout == "2bit":
            x_sum += sum(jnp.sum(v, axis=1) for v in xq)
        return acc_hi, acc_lo, x_sum

    zeros = jnp.zeros((bm, bn), jnp.int32)
    acc_hi, acc_lo, x_sum = lax.fori_loop(
        0, count, body, (zeros, zeros, jnp.zeros((bm,), jnp.int32))
    )
    # float32 from here: 256 * acc_hi can pass 2**31 for long K-ranges
    total = acc_hi.astype(jnp.float32) * 256.0 + acc_lo.astype(jnp.float32)
    # 2-bit: sum_r q (t + 1) - sum_r q. 1.6-bit: sum_j (m_j - 128) x'_j = 256 sum_j d_j x_j -
    # 128 sum_j x'_j, and sum_j x'_j telescopes to 2 sum_j x_j: the total is 256 times
    # sum_j (d_j - 1) x_j = sum_j t_j x_j
    acc = total - x_sum.astype(jnp.float32)[:, None] if layout == "2bit" else total / 256.0
    acc = acc * scale[:, None]
    write_tile(
        acc, s_ref, o_ref, m=m, m0=m0, n0=n0, pid_s=pid_s, cfg=cfg, scale_columns=scale_columns
    )


def imma_matmul(
    x: jax.Array,
    packed: jax.Array,
    scale: float,
    layout: str,
    cfg: BlockConfig,
    n_major: bool = False,
    interpret: bool = False,
) -> jax.Array:
    """``x @ (scale * T)`` with the int8-MMA kernel; ``packed`` is ``[R, N]``, or ``[N, R]`` with
    ``n_major``. ``cfg``: block_m, block_n, block_k (>= 32, dividing R), split_k, num_warps."""
    m, k = x.shape
    rows, n = packed.shape[::-1] if n_major else packed.shape
    if rows % cfg.block_k or n % cfg.block_n or cfg.block_k < 32:
        raise ValueError(
            f"probe: block_k={cfg.block_k} must divide R={rows} (>= 32), "
            f"block_n={cfg.block_n} must divide N={n}"
        )
    if interpret:
        cfg = cfg.replace(decode="jnp")
    total_steps = rows // cfg.block_k
    split, steps_per_split = split_steps(total_steps, cfg.split_k)
    kernel = functools.partial(
        imma_kernel,
        layout=layout,
        m=m,
        k=k,
        rows=rows,
        cfg=cfg.replace(split_k=split),
        steps_per_split=steps_per_split,
        total_steps=total_steps,
        scale_columns=False,
        n_major=n_major,
    )
    s2d = jnp.asarray(scale, jnp.float32).reshape(1, 1)
    out = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((split, m, n), jnp.float32),
        grid=(n // cfg.block_n, math.ceil(m / cfg.block_m), split),
        compiler_params=plgpu.CompilerParams(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
        interpret=interpret,
    )(x, packed, s2d)
    return (out.sum(0) * s2d).astype(x.dtype)


CONFIGS = [  # (block_m, block_n, block_k, split_k, num_warps)
    (16, 128, 64, 4, 4),
    (16, 256, 64, 4, 8),
    (16, 128, 128, 4, 4),
    (16, 64, 128, 4, 4),
    (16, 128, 128, 2, 8),
]


def main() -> int:
    key = jax.random.key(0)
    for layout in layouts.LAYOUTS:
        for n_major in (False, True):
            m, k, n = 16, 2048, 512
            packed = _random_packed(jax.random.fold_in(key, 1), k, n, layout)
            x = jax.random.normal(key, (m, k), jnp.bfloat16)
            cfg = BlockConfig(block_m=16, block_n=128, block_k=32, split_k=2)
            w = packed.T if n_major else packed
            got = np.asarray(imma_matmul(x, w, 0.5, layout, cfg, n_major), np.float64)
            trits = layouts.unpack(np.asarray(packed), k, layout).astype(np.float64)
            want = np.asarray(x, np.float64) @ (0.5 * trits)
            err = np.linalg.norm(got - want) / np.linalg.norm(want)
            print(f"check {layout} n_major={n_major}: rel err {err:.2e}", flush=True)
    print("shape         M   bf16 us | layout  shipped us (x)  int8 R-major us (x)  N-major us (x)")
    for k, n in [(8192, 28672), (3072, 8192)]:
        for m in (16, 64):
            xs = [
                jax.random.normal(jax.random.fold_in(key, i), (m, k), jnp.bfloat16)
                for i in range(4)
            ]
            wb = [
                jax.random.randint(jax.random.fold_in(key, 9 + i), (k, n), -1, 2).astype(
                    jnp.bfloat16
                )
                for i in range(2)
            ]
            t_bf16 = _time_per_call(jnp.dot, xs, wb, 7)
            del wb
            for layout in layouts.LAYOUTS:
                ws = [
                    _random_packed(jax.random.fold_in(key, 100 + i), k, n, layout) for i in range(3)
                ]
                shipped = preferred_config(layout, m, k, n)
                t_shipped = _time_per_call(
                    lambda x, w, c=shipped, lay=layout: ternary_matmul_pallas(
                        x, w, jnp.float32(0.5), lay, c
                    ),
                    xs,
                    ws,
                    7,
                )
                best = {}
                for n_major in (False, True):
                    w_sets = [jax.block_until_ready(w.T) for w in ws] if n_major else ws
                    for bm, bn, bk, split, warps in CONFIGS:
                        cfg = BlockConfig(
                            block_m=bm, block_n=bn, block_k=bk, split_k=split, num_warps=warps
                        )
                        try:
                            t = _time_per_call(
                                lambda x, w, c=cfg, lay=layout, nm=n_major: imma_matmul(
                                    x, w, 0.5, lay, c, nm
                                ),
                                xs,
                                w_sets,
                                7,
                            )
                        except ValueError:
                            continue
                        best[n_major] = min(best.get(n_major, 1e9), t)
                cells = [f"{t * 1e6:6.1f} ({t_bf16 / t:.2f})" for t in (t_shipped, *best.values())]
                print(f"{k}x{n:<6d} {m:3d} {t_bf16 * 1e6:8.1f} | {layout:6s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

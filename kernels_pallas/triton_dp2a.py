"""Pallas (Triton lowering) GPU kernel for small M and the 2-bit layout: integer dot products.

The float CUDA-core kernel (``triton_gemv.py``) spends an AND and an FFMA on every weight, plus a
quarter of a byte move: on an H100 its integer pipe (half the FP32 rate) is the limit, not the
memory. This kernel moves the arithmetic to ``dp2a`` (two 16-bit x 8-bit products and a sum in
one instruction) on integer codes:

- Each program quantizes the x values it reads to int16 (``|q| <= 16383``) with one float32
  scale per x row: the largest ``|x|`` of its K-range (a first pass over that range, from L2), so
  rounding costs at most 3e-5 of that value per element, far below bf16's own rounding. Two
  values go into a word: the rounded float ``x / s + 1.5 * 2**23`` holds ``round(x / s)`` in its
  low 16 bits.
- A thread holds 4 packed rows of 4 columns (4 registers) and transposes them with 8 ``prmt``
  so that one register holds one column's 4 consecutive rows. Plane j's codes ``c = t + 1`` are
  then one shift and one AND away (4 codes, one a byte), and two ``dp2a`` add ``sum c * q`` over
  the 4 rows: per 16 weights 2 ``prmt`` (the transpose is shared by the planes), 7 shifts and
  ANDs and 8 ``dp2a``.
- The sums stay int32 across the whole K-range (``|sum| < 2 * 16383 * K``, below 2**31 up to
  K = 65536) and become float once, at the end. The codes are ``t + 1``: the kernel also sums
  the quantized x it used and subtracts that once, then multiplies by the program's x scale.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

X_MAX = 16383.0
"""Largest |quantized x|: the int32 sums (codes <= 2) cannot overflow below K = 65536."""
MAGIC = 12582912.0  # 1.5 * 2**23: v + MAGIC rounds v (|v| < 2**22) to an integer ...
MAGIC_BITS = 0x4B400000  # ... whose bits are MAGIC_BITS + round(v)


# One block per plane j: $4..$7 = the bytes of rows 4g + 0..3 (4 columns each), $8..$11 = the
# x words of rows 4g, 4g + 1 (lo), $12..$15 of rows 4g + 2, 4g + 3 (hi), $16..$19 = the sums of
# the 4 columns; returns the 4 updated sums. ptxas shares the transpose between the blocks.
def _asm_2bit_plane(j: int) -> str:
    lines = [
        "{",
        ".reg .b32 s0, s1, s2, s3, t0, t1, t2, t3, c;",
        "prmt.b32 s0, $4, $5, 0x5140;",  # r0c0 r1c0 r0c1 r1c1
        "prmt.b32 s1, $4, $5, 0x7362;",  # r0c2 r1c2 r0c3 r1c3
        "prmt.b32 s2, $6, $7, 0x5140;",  # r2c0 r3c0 r2c1 r3c1
        "prmt.b32 s3, $6, $7, 0x7362;",
        "prmt.b32 t0, s0, s2, 0x5410;",  # column 0, rows 0..3
        "prmt.b32 t1, s0, s2, 0x7632;",
        "prmt.b32 t2, s1, s3, 0x5410;",
        "prmt.b32 t3, s1, s3, 0x7632;",
    ]
    for col in range(4):
        src = f"t{col}"
        if j:
            lines.append(f"shr.b32 c, t{col}, {2 * j};")
            src = "c"
        lines += [
            f"and.b32 c, {src}, 0x03030303;",
            f"dp2a.lo.s32.u32 ${col}, ${8 + col}, c, ${16 + col};",
            f"dp2a.hi.s32.u32 ${col}, ${12 + col}, c, ${col};",
        ]
    return "\n".join([*lines, "}"])


DP2A_ASM_PLANES: list[str] = [_asm_2bit_plane(j) for j in range(4)]
"""PTX adding plane j's codes times x (4 rows, 4 columns) to 4 integer sums (tested on CPU by
the emulator in tests/kernels_pallas/test_kernels_ptx_decode.py)."""


def _plane_sums_asm(wqs, x_lo, x_hi, sums, j: int) -> jax.Array:
    [out] = plgpu.elementwise_inline_asm(
        DP2A_ASM_PLANES[j],
        args=[*wqs, x_lo, x_hi, sums],
        constraints="=r,=r,=r,=r," + ",".join(["r"] * 16),
        pack=4,
        result_shape_dtypes=[jax.ShapeDtypeStruct(sums.shape, jnp.int32)],
    )
    return out


def _plane_sums_jnp(wqs, x_lo, x_hi, sums, j: int) -> jax.Array:
    """The same sums with jnp integer operations (interpret mode, other GPUs)."""
    halves = [(x_lo << 16) >> 16, x_lo >> 16, (x_hi << 16) >> 16, x_hi >> 16]  # sign-extended
    for wq, xq in zip(wqs, halves, strict=True):
        sums = sums + ((wq.astype(jnp.int32) >> (2 * j)) & 3) * xq
    return sums


def _rows(ref, start, count: int, stride: int, other, decode: str, row_first: bool = True):
    """``count`` entries ``start, start + stride, ...`` along one axis of ``ref`` (the other
    axis indexed by ``other``). The GPU kernel loads them strided; interpret mode cannot discharge
    a strided load inside a loop (jax 0.10), so the portable path loads the span and slices it."""
    if decode == "asm":
        idx = pl.ds(start, count, stride=stride)
        return ref[idx, other] if row_first else ref[other, idx]
    span = pl.ds(start, (count - 1) * stride + 1)  # no row past the last one read
    block = ref[span, other] if row_first else ref[other, span]
    return block[::stride]


def _kernel(
    x_ref,
    w_ref,
    s_ref,
    o_ref,
    *,
    m: int,
    rows: int,
    block_n: int,
    block_k: int,
    split: int,
    steps_per_split: int,
    total_steps: int,
    scale_columns: bool,
    decode: str,
):
    bn, bk, groups = block_n, block_k, block_k // 4
    pid_n, pid_s = pl.program_id(0), pl.program_id(1)
    n0 = pl.multiple_of(pid_n * bn, bn)
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)
    plane_sums = _plane_sums_asm if decode == "asm" else _plane_sums_jnp

    def amax_body(i, amaxes):  # the largest |x| of this program's K-range, per row
        r0 = pl.multiple_of((first + i) * bk, bk)
        out = []
        for row, a in enumerate(amaxes):
            for j in range(4):
                xj = x_ref[jnp.int32(row), pl.ds(j * rows + r0, bk)].astype(jnp.float32)
                a = jnp.maximum(a, jnp.abs(xj))
            out.append(a)
        return tuple(out)

    amaxes = lax.fori_loop(
        0, count, amax_body, tuple(jnp.zeros((bk,), jnp.float32) for _ in range(m))
    )
    scales = []
    for a in amaxes:
        amax = jnp.max(a)
        scales.append(jnp.where(amax > 0, amax / X_MAX, 1.0))
    inverses = [1.0 / s for s in scales]

    def x_words(row: int, j: int, r0: jax.Array, inverse: jax.Array):
        """Plane j's quantized x of rows r0 + 4g + 0..3: words (q0, q1) and (q2, q3) of each
        group g, and q0 + q1 + q2 + q3."""
        bits = []
        for q in range(4):
            xq = _rows(x_ref, j * rows + r0 + q, groups, 4, jnp.int32(row), decode, False)
            v = xq.astype(jnp.float32) * inverse + MAGIC
            bits.append(lax.bitcast_convert_type(v, jnp.int32))
        lo = (bits[0] & 0xFFFF) | (bits[1] << 16)
        hi = (bits[2] & 0xFFFF) | (bits[3] << 16)
        return lo, hi, sum(b - jnp.int32(MAGIC_BITS) for b in bits)

    def body(i, carry):
        sums, offsets = list(carry[0]), list(carry[1])
        r0 = pl.multiple_of((first + i) * bk, bk)
        # rows r0 + 4g + q for q = 0..3: the q-th byte of each group's transposed column
        wqs = [_rows(w_ref, r0 + q, groups, 4, pl.ds(n0, bn), decode) for q in range(4)]
        for row in range(m):
            for j in range(4):
                x_lo, x_hi, q_sum = x_words(row, j, r0, inverses[row])
                x_lo = jnp.broadcast_to(x_lo[:, None], (groups, bn))
                x_hi = jnp.broadcast_to(x_hi[:, None], (groups, bn))
                sums[row] = plane_sums(wqs, x_lo, x_hi, sums[row], j)
                offsets[row] = offsets[row] + q_sum
        return tuple(sums), tuple(offsets)

    init = (
        tuple(jnp.zeros((groups, bn), jnp.int32) for _ in range(m)),
        tuple(jnp.zeros((groups,), jnp.int32) for _ in range(m)),
    )
    sums, offsets = lax.fori_loop(0, count, body, init)
    for row in range(m):
        total = jnp.sum(sums[row], axis=0) - jnp.sum(offsets[row])  # exact int32
        out = total.astype(jnp.float32) * scales[row]
        if split > 1:
            o_ref[pid_s, row, pl.ds(n0, bn)] = out
        else:
            s = s_ref[0, pl.ds(n0, bn)] if scale_columns else s_ref[0, 0]
            o_ref[row, pl.ds(n0, bn)] = (out * s).astype(o_ref.dtype)


def dp2a_kernel(
    *,
    m: int,
    rows: int,
    n: int,
    block_n: int,
    block_k: int,
    split: int,
    steps_per_split: int,
    scale_columns: bool,
    decode: str,
) -> tuple[functools.partial, tuple[int, int]]:
    """The kernel body and grid for ``pl.pallas_call`` (same operands as the other kernels)."""
    kernel = functools.partial(
        _kernel,
        m=m,
        rows=rows,
        block_n=block_n,
        block_k=block_k,
        split=split,
        steps_per_split=steps_per_split,
        total_steps=rows // block_k,
        scale_columns=scale_columns,
        decode=decode,
    )
    return kernel, (n // block_n, split)

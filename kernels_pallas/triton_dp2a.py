"""Pallas (Triton lowering) GPU kernel for small M: integer dot products (both layouts).

The float CUDA-core kernel (``triton_gemv.py``) spends an AND and an FFMA on every 2-bit weight,
plus a quarter of a byte move: on an H100 its integer pipe (half the FP32 rate) is the limit, not
the memory. This kernel moves the arithmetic to ``dp2a`` (two 16-bit x 8-bit products and a sum
in one instruction) on integer weights:

- Each program quantizes the x values it reads to int16 (``|q| <= X_MAX``) with one float32
  scale per x row: the largest ``|x|`` of its K-range (a first pass over that range, from L2), so
  rounding costs at most 6e-5 of that value per element, far below bf16's own rounding. Two
  values go into a word: the rounded float ``x / s + 1.5 * 2**23`` holds ``round(x / s)`` in its
  low 16 bits.
- A thread holds 4 packed rows of 4 columns (4 registers) and transposes them with 8 ``prmt``
  so that one register holds one column's 4 consecutive rows; two ``dp2a`` then add
  ``sum weight * q`` over the 4 rows. 2-bit: plane j's codes ``c = t + 1`` are one shift and one
  AND away (4 codes, one a byte). 1.6-bit: see :data:`WEIGHT_PLANES` (bytes times x, no digit
  extraction).
- The sums stay int32 and become float once, at the end. The codes are ``t + 1``: the kernel
  also sums the quantized x it used and subtracts that once, then multiplies by the program's x
  scale.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels_pallas import layouts
from kernels_pallas.triton_gemv import cuda_core_kernel, write_rows

MAGIC = 12582912.0  # 1.5 * 2**23: v + MAGIC rounds v (|v| < 2**22) to an integer ...
MAGIC_BITS = 0x4B400000  # ... whose bits are MAGIC_BITS + round(v)


def rounded_int(v: jax.Array) -> jax.Array:
    """``round(v)`` (to nearest even) as int32 for float32 ``|v| < 2**22``: the bits of
    ``v + MAGIC`` less ``MAGIC_BITS``, two instructions where a rounding conversion lowers to
    more in some of the kernels' lowerings."""
    return lax.bitcast_convert_type(v + MAGIC, jnp.int32) - jnp.int32(MAGIC_BITS)


# One block per plane: $4..$7 = the bytes of rows 4g + 0..3 (4 columns each), $8..$11 = the x
# words of rows 4g, 4g + 1 (lo), $12..$15 of rows 4g + 2, 4g + 3 (hi), $16..$19 = the sums of
# the 4 columns; returns the 4 updated sums. ptxas shares the transpose (and the 1.6-bit lane
# spreading) between a step's blocks.
_TRANSPOSE = [
    ".reg .b32 s0, s1, s2, s3, t0, t1, t2, t3, c, z, lo, hi;",
    "mov.b32 z, 0;",
    "prmt.b32 s0, $4, $5, 0x5140;",  # r0c0 r1c0 r0c1 r1c1
    "prmt.b32 s1, $4, $5, 0x7362;",  # r0c2 r1c2 r0c3 r1c3
    "prmt.b32 s2, $6, $7, 0x5140;",  # r2c0 r3c0 r2c1 r3c1
    "prmt.b32 s3, $6, $7, 0x7362;",
    "prmt.b32 t0, s0, s2, 0x5410;",  # column 0, rows 0..3
    "prmt.b32 t1, s0, s2, 0x7632;",
    "prmt.b32 t2, s1, s3, 0x5410;",
    "prmt.b32 t3, s1, s3, 0x7632;",
]


def _dp2a_lines(col: int) -> list[str]:
    return [
        f"dp2a.lo.s32.u32 ${col}, ${8 + col}, c, ${16 + col};",
        f"dp2a.hi.s32.u32 ${col}, ${12 + col}, c, ${col};",
    ]


def _asm_2bit_plane(j: int) -> str:
    """Codes of plane j: one shift and one AND (4 codes, a byte each)."""
    lines = ["{", *_TRANSPOSE]
    for col in range(4):
        src = f"t{col}"
        if j:
            lines.append(f"shr.b32 c, t{col}, {2 * j};")
            src = "c"
        lines += [f"and.b32 c, {src}, 0x03030303;", *_dp2a_lines(col)]
    return "\n".join([*lines, "}"])


def _asm_1p6bit_plane(j: int) -> str:
    """``m_j = q * 3**j mod 256`` of each byte: two bytes a register in 16-bit lanes, one multiply
    (q * 243 < 2**16: the lanes never carry into each other), and the low byte of each lane
    gathered back into 4 bytes."""
    lines = ["{", *_TRANSPOSE]
    for col in range(4):
        if j:
            lines += [
                f"prmt.b32 lo, t{col}, z, 0x4140;",  # rows 0, 1 -> 16-bit lanes
                f"prmt.b32 hi, t{col}, z, 0x4342;",  # rows 2, 3
                f"mul.lo.u32 lo, lo, {3**j};",
                f"mul.lo.u32 hi, hi, {3**j};",
                "prmt.b32 c, lo, hi, 0x6420;",  # the low byte of each lane: mod 256
            ]
        else:
            lines.append(f"mov.b32 c, t{col};")
        lines += _dp2a_lines(col)
    return "\n".join([*lines, "}"])


DP2A_ASM_PLANES: dict[str, list[str]] = {
    "2bit": [_asm_2bit_plane(j) for j in range(4)],
    "1.6bit": [_asm_1p6bit_plane(j) for j in range(6)],
}
"""PTX adding ``code * x`` (2-bit: plane j's codes; 1.6-bit: ``m_j``, see :data:`WEIGHT_PLANES`)
over 4 rows to the sums of 4 columns (tested on CPU by the emulator in
tests/kernels_pallas/test_kernels_ptx_decode.py)."""

WEIGHT_PLANES = {"2bit": 4, "1.6bit": 6}
"""Integer weight planes a layout's kernel sums over. 1.6-bit uses ``m_j = q * 3**j mod 256``
for j = 0..5 and the identity ``256 d_j = 3 m_j - m_{j+1}`` (the digit ``d_j`` is the high byte
of ``3 m_j``, whose low byte is ``m_{j+1}``), so that ``256 sum_j d_j x_j = sum_j m_j x'_j`` with
``x'_0 = 3 x_0``, ``x'_j = 3 x_j - x_{j-1}``, ``x'_5 = -x_4``: bytes times x, no digit
extraction."""
X_MAX = {"2bit": 16383.0, "1.6bit": 8191.0}
"""Largest |quantized x| (1.6-bit: |x'| <= 4 * 8191 fits 16 bits). 2-bit sums cannot overflow
int32 below K = 65536; 1.6-bit sums (256 times larger) are shifted down after every step."""


def _plane_sums_asm(wqs, x_lo, x_hi, sums, layout: str, j: int) -> jax.Array:
    [out] = plgpu.elementwise_inline_asm(
        DP2A_ASM_PLANES[layout][j],
        args=[*wqs, x_lo, x_hi, sums],
        constraints="=r,=r,=r,=r," + ",".join(["r"] * 16),
        pack=4,
        result_shape_dtypes=[jax.ShapeDtypeStruct(sums.shape, jnp.int32)],
    )
    return out


def _plane_sums_jnp(wqs, x_lo, x_hi, sums, layout: str, j: int) -> jax.Array:
    """The same sums with jnp integer operations (interpret mode, other GPUs)."""
    halves = [(x_lo << 16) >> 16, x_lo >> 16, (x_hi << 16) >> 16, x_hi >> 16]  # sign-extended
    for wq, xq in zip(wqs, halves, strict=True):
        q = wq.astype(jnp.int32)
        code = (q >> (2 * j)) & 3 if layout == "2bit" else (q * 3**j) & 0xFF
        sums = sums + code * xq
    return sums


def _rows(ref, start, count: int, stride: int, other, decode: str, row_first=True, limit=None):
    """``count`` entries ``start, start + stride, ...`` along one axis of ``ref`` (the other
    axis indexed by ``other``; entries at or past ``limit`` read as 0). The GPU kernel loads them
    strided; interpret mode cannot discharge a strided load inside a loop (jax 0.10), so the
    portable path loads the span and slices it."""
    if decode == "asm":
        idx = pl.ds(start, count, stride=stride)
        view = ref.at[idx, other] if row_first else ref.at[other, idx]
        if limit is None:
            return view[...]
        where = start + stride * lax.broadcasted_iota(jnp.int32, (count,), 0)
        return plgpu.load(view, mask=where < limit, other=0)
    size = (count - 1) * stride + 1  # no row past the last one read
    view = ref.at[pl.ds(start, size), other] if row_first else ref.at[other, pl.ds(start, size)]
    if limit is None:
        block = view[...]
    else:
        block = plgpu.load(
            view, mask=start + lax.broadcasted_iota(jnp.int32, (size,), 0) < limit, other=0
        )
    return block[::stride]


def _kernel(
    x_ref,
    w_ref,
    s_ref,
    o_ref,
    *,
    layout: str,
    m: int,
    k: int,
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
    planes = layouts.TRITS_PER_BYTE[layout]
    pid_n, pid_s = pl.program_id(0), pl.program_id(1)
    n0 = pl.multiple_of(pid_n * bn, bn)
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)
    plane_sums = _plane_sums_asm if decode == "asm" else _plane_sums_jnp
    # only 1.6-bit's last planes reach the zero padding of K (rows k <= j * rows + r)
    limit = [k if (j + 1) * rows > k else None for j in range(planes)]

    def amax_body(i, amaxes):  # the largest |x| of this program's K-range, per row
        r0 = pl.multiple_of((first + i) * bk, bk)
        out = []
        for row, a in enumerate(amaxes):
            for j in range(planes):
                xj = _rows(x_ref, j * rows + r0, bk, 1, jnp.int32(row), decode, False, limit[j])
                a = jnp.maximum(a, jnp.abs(xj.astype(jnp.float32)))
            out.append(a)
        return tuple(out)

    amaxes = lax.fori_loop(
        0, count, amax_body, tuple(jnp.zeros((bk,), jnp.float32) for _ in range(m))
    )
    scales = []
    for a in amaxes:
        amax = jnp.max(a)
        scales.append(jnp.where(amax > 0, amax / X_MAX[layout], 1.0))
    inverses = [1.0 / s for s in scales]

    def quantized(row: int, j: int, r0: jax.Array, inverse: jax.Array) -> list[jax.Array]:
        """Plane j's x of rows r0 + 4g + q, q = 0..3, rounded to int32 (one [groups] each)."""
        out = []
        for q in range(4):
            xq = _rows(x_ref, j * rows + r0 + q, groups, 4, jnp.int32(row), decode, False, limit[j])
            out.append(rounded_int(xq.astype(jnp.float32) * inverse))
        return out

    def words(values: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
        """Two int16 a word: (rows 0, 1) and (rows 2, 3), broadcast over the tile's columns."""
        lo = (values[0] & 0xFFFF) | (values[1] << 16)
        hi = (values[2] & 0xFFFF) | (values[3] << 16)
        return tuple(jnp.broadcast_to(w[:, None], (groups, bn)) for w in (lo, hi))

    def body(i, carry):
        totals, offsets = list(carry[0]), list(carry[1])
        r0 = pl.multiple_of((first + i) * bk, bk)
        # rows r0 + 4g + q for q = 0..3: the q-th byte of each group's transposed column
        wqs = [_rows(w_ref, r0 + q, groups, 4, pl.ds(n0, bn), decode) for q in range(4)]
        for row in range(m):
            xq = [quantized(row, j, r0, inverses[row]) for j in range(planes)]
            offsets[row] = offsets[row] + sum(sum(v) for v in xq)
            if layout == "2bit":
                sums = totals[row]
                for j in range(planes):
                    sums = plane_sums(wqs, *words(xq[j]), sums, layout, j)
                totals[row] = sums
            else:  # x'_j = 3 x_j - x_{j-1} against m_j (WEIGHT_PLANES); 256 times the sum
                sums = jnp.zeros((groups, bn), jnp.int32)
                for j in range(WEIGHT_PLANES[layout]):
                    x_prime = [
                        (3 * xq[j][q] if j < planes else 0) - (xq[j - 1][q] if j else 0)
                        for q in range(4)
                    ]
                    sums = plane_sums(wqs, *words(x_prime), sums, layout, j)
                totals[row] = totals[row] + (sums >> 8)  # exact: a multiple of 256
        return tuple(totals), tuple(offsets)

    init = (
        tuple(jnp.zeros((groups, bn), jnp.int32) for _ in range(m)),
        tuple(jnp.zeros((groups,), jnp.int32) for _ in range(m)),
    )
    totals, offsets = lax.fori_loop(0, count, body, init)
    outs = []
    for row in range(m):
        total = jnp.sum(totals[row], axis=0) - jnp.sum(offsets[row])  # exact int32
        outs.append(total.astype(jnp.float32) * scales[row])
    write_rows(
        outs, s_ref, o_ref, pid_s=pid_s, n0=n0, bn=bn, split=split, scale_columns=scale_columns
    )


dp2a_kernel = functools.partial(cuda_core_kernel, _kernel)
"""The integer CUDA-core kernel bound to one launch (see ``triton_gemv.cuda_core_kernel``)."""

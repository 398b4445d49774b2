"""Pallas (Triton lowering) GPU kernel for small M: ``x @ (scale * T)`` on the CUDA cores.

For M of 1 to a few rows the matrix units have almost nothing to do (M is padded to 16), while
the MMA kernel (``triton_matmul.py``) writes every decoded bf16 weight to shared memory and reads
it back in the MMA operand layout (4 bytes of shared-memory traffic a weight; with the weights as
the left operand Triton keeps them in registers but waits for each ``wgmma`` to finish). This
kernel stays in registers: each thread decodes its bytes and accumulates ``x * w`` with float32
FMAs. On an H100 it is the faster kernel at M = 1 on most layer shapes (docs/benchmarks.md).

Decoding ("magic float"): a packed byte is moved into bits 16..23 of a word whose top byte is
0x4B (the float ``2**23``), and one AND keeps plane j's code ``c`` there, giving the float
``2**23 * (1 + c * delta_j)`` exactly. One FMA with ``x * 2**-23 / delta_j`` adds
``x / delta_j + x * c`` to the accumulator; the ``x / delta_j`` terms and the ``-1`` of the
trit (``t = c - 1``) do not depend on the column, so the kernel subtracts their sum once at the
end. Per weight that is one AND and one FMA (and a quarter of a byte move); per 2-bit plane 3,
whose code reaches bit 23, the code's high bit lands in the exponent (``2**24`` instead of
``2**23``), which keeps the value affine in ``c``: 2**23 * {1, 1.5, 2}. For 1.6-bit, the base-3
digit of plane j is byte 1 of ``3 * m_j`` (``m_j = q * 3**j mod 256``, two bytes a register in
16-bit lanes), moved the same way: half a multiply, half an AND, a byte move and an FMA a weight.

The column-independent offset is up to 128 times the signal per term (``delta = 1/128``); float32
accumulation absorbs it, except that for all-positive activations (the offset then grows like K,
the result like sqrt(K)) it adds about 1e-3 relative error at K = 8192 (tested).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels_pallas import layouts

MAGIC = 0x4B000000  # float32 2**23
MAX_GEMV_M = 8
"""Largest M the CUDA-core kernel takes (each row costs one FMA a weight; decoding is shared)."""


def plane_delta(layout: str, j: int) -> float:
    """``delta_j``: the decoded float of plane j is ``2**23 * (1 + c * delta_j)``."""
    if layout == "1.6bit":
        return 2.0**-7
    return 0.5 if j == 3 else 2.0 ** (2 * j - 7)


# Each block takes 4 packed bytes ($4), the 4 matching scaled x values ($5..$8) and accumulators
# ($9..$12), and returns the 4 updated accumulators ($0..$3): acc + magic(byte) * x, with the FMA
# inside the asm because Triton emits a separate multiply and add (measured: no fused FP32 ops).
_PREFIX = [".reg .b32 e, z, p0, p1, p2, p3, lo, hi, t, u;", f"mov.b32 e, 0x{MAGIC:08x};"]


def _fma_lines(src: list[str]) -> list[str]:
    return [f"fma.rn.f32 ${i}, {v}, ${5 + i}, ${9 + i};" for i, v in enumerate(src)]


def _asm_2bit_plane(j: int) -> str:
    mask = 0xFF000000 | (3 << (16 + 2 * j))
    lines = ["{", *_PREFIX]
    for i in range(4):  # byte i -> bits 16..23 under the 0x4B exponent byte, then keep plane j
        lines += [f"prmt.b32 p{i}, $4, e, 0x7{i}44;", f"and.b32 p{i}, p{i}, 0x{mask:08x};"]
    return "\n".join([*lines, *_fma_lines([f"p{i}" for i in range(4)]), "}"])


def _asm_1p6bit_plane(j: int) -> str:
    lines = [
        "{",
        *_PREFIX,
        "mov.b32 z, 0;",
        "prmt.b32 lo, $4, z, 0x4140;",  # bytes 0, 1 -> 16-bit lanes
        "prmt.b32 hi, $4, z, 0x4342;",  # bytes 2, 3
    ]
    for _ in range(j):  # m <- 3 m mod 256, lane by lane (3 * 255 < 2**16: no carry between lanes)
        lines += [
            "mul.lo.u32 lo, lo, 3;",
            "and.b32 lo, lo, 0x00ff00ff;",
            "mul.lo.u32 hi, hi, 3;",
            "and.b32 hi, hi, 0x00ff00ff;",
        ]
    lines += [
        "mul.lo.u32 t, lo, 3;",  # the digit is byte 1 of each lane of 3 m
        "mul.lo.u32 u, hi, 3;",
        "prmt.b32 p0, t, e, 0x7144;",
        "prmt.b32 p1, t, e, 0x7344;",
        "prmt.b32 p2, u, e, 0x7144;",
        "prmt.b32 p3, u, e, 0x7344;",
    ]
    return "\n".join([*lines, *_fma_lines([f"p{i}" for i in range(4)]), "}"])


GEMV_ASM_PLANES: dict[str, list[str]] = {
    "2bit": [_asm_2bit_plane(j) for j in range(4)],
    "1.6bit": [_asm_1p6bit_plane(j) for j in range(5)],
}
"""PTX adding plane j's magic floats times x into 4 accumulators, per layout (tested on CPU by the
emulator in tests/kernels_pallas/test_kernels_ptx_decode.py). ptxas shares the byte moves and
the base-3 steps between the planes' blocks (measured: instructions per weight)."""


def _fma_asm(wq: jax.Array, x: jax.Array, acc: jax.Array, layout: str, j: int) -> jax.Array:
    [out] = plgpu.elementwise_inline_asm(
        GEMV_ASM_PLANES[layout][j],
        args=[wq, x, acc],
        constraints="=r,=r,=r,=r," + ",".join(["r"] * 9),
        pack=4,
        result_shape_dtypes=[jax.ShapeDtypeStruct(acc.shape, jnp.float32)],
    )
    return out


def magic_floats(wq: jax.Array, layout: str, j: int) -> jax.Array:
    """The magic floats of plane j with jnp bit operations (interpret mode, other GPUs)."""
    b = wq.astype(jnp.uint32)
    if layout == "2bit":
        bits = ((b << 16) & jnp.uint32(3 << (16 + 2 * j))) | jnp.uint32(MAGIC)
    else:
        m = b
        for _ in range(j):
            m = (m * 3) & 0xFF
        bits = (((m * 3) >> 8) << 16) | jnp.uint32(MAGIC)
    return lax.bitcast_convert_type(bits, jnp.float32)


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
    bn, bk = block_n, block_k
    planes = layouts.TRITS_PER_BYTE[layout]
    pid_n, pid_s = pl.program_id(0), pl.program_id(1)
    n0 = pl.multiple_of(pid_n * bn, bn)
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)
    col = lax.broadcasted_iota(jnp.int32, (bk,), 0)
    x_scale = [2.0**-23 / plane_delta(layout, j) for j in range(planes)]
    # column-independent part of each FMA's result, per unit of scaled x
    offset = [2.0**23 * (1.0 + plane_delta(layout, j)) for j in range(planes)]

    def load_x(row: int, j: int, r0: jax.Array) -> jax.Array:
        c0 = j * rows + r0
        ref = x_ref.at[jnp.int32(row), pl.ds(c0, bk)]
        # only 1.6-bit's last planes reach the zero padding of K
        padded = (j + 1) * rows > k
        xj = plgpu.load(ref, mask=(c0 + col) < k, other=0.0) if padded else ref[...]
        return xj.astype(jnp.float32) * x_scale[j]

    def load_w(i: jax.Array) -> jax.Array:
        r0 = pl.multiple_of((first + i) * bk, bk)
        return w_ref[pl.ds(r0, bk), pl.ds(n0, bn)]

    def body(i, carry):
        accs, bias = carry
        wq = load_w(i)
        r0 = pl.multiple_of((first + i) * bk, bk)
        accs, bias = list(accs), list(bias)
        for j in range(planes):
            v = None if decode == "asm" else magic_floats(wq, layout, j)
            for row in range(m):
                xj = load_x(row, j, r0)
                xb = jnp.broadcast_to(xj[:, None], (bk, bn))
                if decode == "asm":
                    accs[row] = _fma_asm(wq, xb, accs[row], layout, j)
                else:
                    accs[row] = accs[row] + v * xb
                bias[row] = bias[row] + xj * offset[j]
        return tuple(accs), tuple(bias)

    init = (
        tuple(jnp.zeros((bk, bn), jnp.float32) for _ in range(m)),
        tuple(jnp.zeros((bk,), jnp.float32) for _ in range(m)),
    )
    accs, bias = lax.fori_loop(0, count, body, init)
    outs = [jnp.sum(accs[row], axis=0) - jnp.sum(bias[row]) for row in range(m)]
    write_rows(
        outs, s_ref, o_ref, pid_s=pid_s, n0=n0, bn=bn, split=split, scale_columns=scale_columns
    )


def write_rows(outs, s_ref, o_ref, *, pid_s, n0, bn: int, split: int, scale_columns: bool):
    """A CUDA-core program's output: its rows' float32 partial sums (split-K, added by one XLA
    reduction), or the rows times gamma in the output dtype."""
    for row, out in enumerate(outs):
        if split > 1:
            o_ref[pid_s, row, pl.ds(n0, bn)] = out
        else:
            s = s_ref[0, pl.ds(n0, bn)] if scale_columns else s_ref[0, 0]
            o_ref[row, pl.ds(n0, bn)] = (out * s).astype(o_ref.dtype)


def cuda_core_kernel(
    body,
    *,
    layout: str,
    m: int,
    k: int,
    rows: int,
    n: int,
    block_n: int,
    block_k: int,
    split: int,
    steps_per_split: int,
    scale_columns: bool,
    decode: str,
) -> tuple[functools.partial, tuple[int, int]]:
    """A CUDA-core kernel ``body`` (this module's or ``triton_dp2a.py``'s) bound to one launch,
    and its grid; ``ternary_matmul_pallas`` launches it the same way as the MMA kernel: same
    operands, same split-K partial sums."""
    if m > MAX_GEMV_M:
        raise ValueError(f"CUDA-core kernel: M={m} is above its limit of {MAX_GEMV_M} rows")
    kernel = functools.partial(
        body,
        layout=layout,
        m=m,
        k=k,
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


gemv_kernel = functools.partial(cuda_core_kernel, _kernel)
"""The float CUDA-core kernel bound to one launch (see :func:`cuda_core_kernel`)."""

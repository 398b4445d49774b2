"""Pallas (Triton lowering) GPU kernel for ``x @ (scale * T)`` with T in a packed ternary layout,
on the matrix units; ``ternary_matmul_pallas`` also launches the CUDA-core kernels of
``triton_gemv.py`` (chosen at M = 1) and ``triton_dp2a.py`` (where the tuned table says so)
with the same operands and split-K partial sums.

One program computes a ``[block_m, block_n]`` tile of the output over one K-range (its split).
Each loop step loads ``[block_k, block_n]`` packed bytes (the only read of the weights; nothing
unpacked reaches HBM), decodes them in registers into one bf16 tile per plane (4 for "2bit", 5 for
"1.6bit", see ``layouts.py``) and multiplies each with the matching ``[block_m, block_k]`` slice of
x, accumulating in float32. With ``split_k > 1`` the programs write float32 partial sums that one
XLA reduction adds, scales and casts; otherwise the kernel applies the scale itself.

Decoding ("asm") is inline PTX on 4 bytes at a time, using the bf16 "magic number" trick: OR a
code c (< 128) into the mantissa of 128.0 (0x4300) to get the bf16 ``128 + c`` without an
integer-to-float conversion, then one ``fma.rn.bf16x2`` maps two such values to ``c - 1`` at once.
For 1.6-bit, the base-3 digit ``((m * 3) >> 8)`` is read with one byte permute (``prmt``) that
also inserts the 0x43 exponent byte. "jnp" computes the same thing with jnp ops (portable, and
what interpret mode runs).

``raw_codes`` drops that FMA: the MMA multiplies the magic values ``v = 128 + 4**j c`` (2-bit) or
``128 + d`` (1.6-bit) themselves with an x whose plane-j columns were multiplied by ``4**-j``
beforehand (exact in bf16), and the column-independent rest of ``t = a_j v + b_j`` is one
float32 offset a row, added to the partial sums after the kernel. Offline SASS (sm_90a):
2-bit 2.90 -> 2.05 instructions a weight at block_m 16, 2.56 -> 1.91 at 64.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels_pallas import layouts
from kernels_pallas.triton_dp2a import dp2a_kernel
from kernels_pallas.triton_gemv import MAX_GEMV_M, gemv_kernel

KERNEL_K_MULTIPLE = 256
KERNEL_N_MULTIPLE = 256
DEFAULT_NUM_SMS = 132
"""Multiprocessors of the H100 and H200 SXM, where the rules were measured; the rules' count
where the device does not say its own (the CPU, interpret mode)."""
INTEGER_KERNEL_MIN_WEIGHTS = 1 << 27
"""K * N from which ``default_config`` takes the integer CUDA-core kernel at M = 1."""


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Tiling and code-generation choices of one kernel launch.

    block_m: rows of x per program (power of two >= 16: the MMA's smallest tile).
    block_n: output columns per program (power of two dividing N).
    block_k: packed rows per loop step (power of two dividing R); a step covers
      ``planes * block_k`` K-rows.
    split_k: programs that share one output tile, each over a contiguous range of steps
      (fills the SMs when N alone does not).
    num_warps, num_stages: Triton's warps per program and software-pipelining depth.
    weights_left: compute ``(T^T x^T)^T`` so that the decoded weights are the MMA's left operand
      (its M dimension is then block_n, and a tiny M only pads the MMA's N side).
    decode: "asm" (inline PTX; CUDA only) or "jnp" (portable jnp bit operations).
    gemv: run the CUDA-core kernel of ``triton_gemv.py`` instead (M <= 8; block_m and
      weights_left are then unused): no MMA, no shared-memory round trip of decoded weights.
    x_int16: with ``gemv``, the integer variant of the CUDA-core kernel (``triton_dp2a.py``):
      x quantized to int16 in the kernel, ``dp2a`` on integer weights.
    raw_codes: the MMA kernel multiplies the raw "magic" bf16 codes ``v`` (one AND-OR a weight
      pair, no FMA; :data:`RAW_ASM_PLANES`) with x pre-scaled per plane, and the trits' offset
      (``t = a_j v + b_j``) is added to the float32 partial sums after the kernel
      (:func:`raw_code_operands`); weights right only.
    """

    block_m: int = 16
    block_n: int = 128
    block_k: int = 64
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    weights_left: bool = False
    decode: str = "asm"
    gemv: bool = False
    x_int16: bool = False
    raw_codes: bool = False

    def replace(self, **changes: object) -> BlockConfig:
        return dataclasses.replace(self, **changes)


def _pow2_at_least(v: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(v, 1))))


def _largest_pow2_dividing(v: int, cap: int) -> int:
    b = cap
    while b > 1 and v % b:
        b //= 2
    return b


def split_k_for(
    tiles: int, steps: int, programs_per_sm: int, num_sms: int = DEFAULT_NUM_SMS
) -> int:
    """Split-K that gives about ``programs_per_sm`` programs an SM for ``tiles`` output tiles,
    keeping at least two loop steps a program."""
    return max(1, min(steps // 2, math.ceil(programs_per_sm * num_sms / tiles)))


def split_steps(total_steps: int, split_k: int) -> tuple[int, int]:
    """``(split, steps_per_split)`` for ``split_k`` programs over ``total_steps`` loop steps:
    ``ceil`` steps each, and ``split`` lowered so that no program is left without work."""
    steps_per_split = math.ceil(total_steps / split_k)
    return math.ceil(total_steps / steps_per_split), steps_per_split


def scale_operand(scale: jax.Array, n: int) -> tuple[jax.Array, bool]:
    """The float32 gamma as a kernel or an epilogue multiplies it: ``[1, N]`` (one a column,
    from a per-column-block scale) or ``[1, 1]``, and whether it is per column."""
    scale_columns = layouts.check_scale_shape(jnp.shape(scale), n) > 1
    if scale_columns:
        return layouts.scale_per_column(scale, n)[None, :], True
    return jnp.asarray(scale, jnp.float32).reshape(1, 1), False


def default_config(
    layout: str, m: int, k: int, n: int, num_sms: int = DEFAULT_NUM_SMS
) -> BlockConfig:
    """Block sizes for one shape.

    Rules rather than a table. M = 1: a CUDA-core kernel on 256-column tiles, 32 packed rows a
    step and split-K to about 8 programs an SM (on an H100 it beat the MMA kernel on 11 of the 16
    measured M = 1 points, by up to 27% on 8192 x 28672): the integer one (``triton_dp2a.py``)
    from ``INTEGER_KERNEL_MIN_WEIGHTS`` weights up (25% / 7% faster than the float one on
    8192 x 28672; below, the two traded places within the noise), else ``triton_gemv.py``. Otherwise
    the MMA kernel: at least two programs per SM (split-K when N alone is too narrow), 16-row MMA
    tiles up to M = 16 and 64-row tiles above, 64 packed rows (256 or 320 K-rows) a step; a
    sweep of alternatives (bigger or smaller block_n, 8 warps, deeper pipelining, weights as the
    MMA's left operand) found none consistently faster (Kernels section of docs/benchmarks.md).
    From ``INTEGER_KERNEL_MIN_WEIGHTS`` weights up and M <= 16 the MMA kernel runs on raw codes
    (``raw_codes``: on an H200, 8192 x 28672 at M = 4 and 16 took 6-13% less time; on smaller
    layers its extra XLA work before the kernel, x's pre-scaling and the offset, costs about
    what it saves).
    """
    r = layouts.rows_per_plane(k, layout)
    if m == 1:
        block_k = _largest_pow2_dividing(r, 32)
        split_k = split_k_for(n // 256, r // block_k, 8, num_sms)
        x_int16 = k * n >= INTEGER_KERNEL_MIN_WEIGHTS
        return BlockConfig(
            block_n=256, block_k=block_k, split_k=split_k, gemv=True, x_int16=x_int16
        )
    block_m = min(max(16, _pow2_at_least(m)), 64)
    block_n = 128
    block_k = _largest_pow2_dividing(r, 64)
    tiles = (n // block_n) * math.ceil(m / block_m)
    steps = r // block_k
    split_k = max(1, min(steps // 2 if steps >= 4 else steps, math.ceil(2 * num_sms / tiles)))
    raw_codes = m <= 16 and k * n >= INTEGER_KERNEL_MIN_WEIGHTS
    return BlockConfig(
        block_m=block_m, block_n=block_n, block_k=block_k, split_k=split_k, raw_codes=raw_codes
    )


def num_sms(device: jax.Device) -> int:
    """The multiprocessors of a GPU (jax's ``core_count``), else :data:`DEFAULT_NUM_SMS`: the
    rules' split-K aims at programs per SM, so an A100 (108) or an L4 (58) gets its own."""
    count = getattr(device, "core_count", None) if device.platform == "gpu" else None
    return count if isinstance(count, int) and count > 0 else DEFAULT_NUM_SMS


def preferred_config(layout: str, m: int, k: int, n: int) -> BlockConfig:
    """The configuration measured fastest for this point on the running GPU model
    (kernels_pallas/tuned/, see tuning.py), else :func:`default_config` for the running device's
    multiprocessor count."""
    from kernels_pallas.tuning import tuned_config  # tuning imports BlockConfig from here

    device = jax.devices()[0]
    if device.platform == "gpu":
        tuned = tuned_config(layout, m, k, n, device.device_kind)
        if tuned is not None:
            return tuned
    return default_config(layout, m, k, n, num_sms(device))


# ----------------------------------------------------------------------------------------------
# Decoding packed bytes into bf16 trits


def _bf16_bits(value: float) -> int:
    """Bit pattern of ``value`` in bfloat16 (exact for the constants used here)."""
    bits = int(np.array(value, np.float32).view(np.uint32))
    if bits & 0xFFFF:
        raise ValueError(f"{value} is not exactly representable in bfloat16")
    return bits >> 16


def _bf16x2(value: float) -> str:
    b = _bf16_bits(value)
    return f"0x{(b << 16) | b:08x}"


# Pallas lowers elementwise_inline_asm with one result only, so each plane is its own asm block
# (ptxas shares the common byte-spreading prmt between them). Each block takes 4 packed bytes
# ($2, elements 0..3) and returns 4 bf16 trits in two registers ($0 = elements 0,1; $1 = 2,3).
_ASM_PROLOGUE = [
    ".reg .b32 lo, hi, t0, t1, z, mg, ca, cb;",
    "mov.b32 z, 0;",
    # bytes 0,1 -> the two 16-bit lanes of lo; bytes 2,3 -> the lanes of hi
    "prmt.b32 lo, $2, z, 0x4140;",
    "prmt.b32 hi, $2, z, 0x4342;",
]


def _trit_fma_lines(mul: float, add: float) -> list[str]:
    """The decode blocks' last step: ``$0, $1 = t0, t1 * mul + add`` in bf16x2 (codes to trits)."""
    return [
        f"mov.b32 ca, {_bf16x2(mul)};",
        f"mov.b32 cb, {_bf16x2(add)};",
        "fma.rn.bf16x2 $0, t0, ca, cb;",
        "fma.rn.bf16x2 $1, t1, ca, cb;",
    ]


# Plane j of the 2-bit layout sits at bits [2j, 2j+2). For j < 3 it stays where it is inside the
# mantissa of 0x4300 (= 128.0), giving 128 + 4**j * c, and fma(v, 4**-j, -(128 * 4**-j + 1))
# maps that exactly to c - 1. Plane 3 (bits 6-7 would touch the exponent) is shifted down first.
# raw: no shift and no FMA; plane 3's high code bit then lands on the exponent's lowest bit
# (0x4300 | 0x80 = 256.0), so the raw code is 128 + 4**j c for every plane (0x4340 = 192.0).
def _asm_2bit_plane(j: int, raw: bool = False) -> str:
    shift = 6 if j == 3 and not raw else 0
    mask = 3 << (2 * j if raw or j < 3 else 0)
    mul = 4.0 ** -(j if j < 3 else 0)
    lines = ["{", *_ASM_PROLOGUE]
    if shift:
        lines += [f"shr.b32 lo, lo, {shift};", f"shr.b32 hi, hi, {shift};"]
    out = ("$0", "$1") if raw else ("t0", "t1")
    lines += [
        f"lop3.b32 {out[0]}, lo, 0x{mask:04x}{mask:04x}, 0x43004300, 0xea;",  # (a & b) | c
        f"lop3.b32 {out[1]}, hi, 0x{mask:04x}{mask:04x}, 0x43004300, 0xea;",
    ]
    if not raw:
        lines += _trit_fma_lines(mul, -(128.0 * mul + 1.0))
    return "\n".join([*lines, "}"])


# 1.6-bit plane j: m = q * 3**j mod 256, then 3 * m holds the digit in its second byte. Both bytes
# of a pair sit in separate 16-bit lanes (255 * 81 < 2**16: lanes never carry into each other).
# prmt picks byte 1 of each lane and puts 0x43 above it: the bf16 128 + d in one instruction
# (the raw code; the FMA maps it to d - 1).
def _asm_1p6bit_plane(j: int, raw: bool = False) -> str:
    lines = ["{", *_ASM_PROLOGUE, "mov.b32 mg, 0x43;"]
    if j:
        lines += [
            f"mul.lo.u32 lo, lo, {3**j};",
            f"mul.lo.u32 hi, hi, {3**j};",
            "and.b32 lo, lo, 0x00ff00ff;",
            "and.b32 hi, hi, 0x00ff00ff;",
        ]
    out = ("$0", "$1") if raw else ("t0", "t1")
    lines += [
        "mul.lo.u32 lo, lo, 3;",
        "mul.lo.u32 hi, hi, 3;",
        f"prmt.b32 {out[0]}, lo, mg, 0x4341;",
        f"prmt.b32 {out[1]}, hi, mg, 0x4341;",
    ]
    if not raw:
        lines += _trit_fma_lines(1.0, -129.0)
    return "\n".join([*lines, "}"])


ASM_PLANES: dict[str, list[str]] = {
    "2bit": [_asm_2bit_plane(j) for j in range(4)],
    "1.6bit": [_asm_1p6bit_plane(j) for j in range(5)],
}
"""PTX decoding plane j of 4 packed bytes into 4 bf16 trits, per layout (tested on CPU by an
emulator in tests/kernels_pallas/test_kernels_ptx_decode.py)."""

RAW_ASM_PLANES: dict[str, list[str]] = {
    "2bit": [_asm_2bit_plane(j, raw=True) for j in range(4)],
    "1.6bit": [_asm_1p6bit_plane(j, raw=True) for j in range(5)],
}
"""The same without the FMA: plane j's raw bf16 codes ``v`` (2-bit: ``128 + 4**j c``; 1.6-bit:
``128 + d``), with ``t = a_j v + b_j`` (:func:`plane_affine`)."""


def _decode_asm(wq: jax.Array, layout: str, raw: bool = False) -> Iterator[jax.Array]:
    """The planes of ``wq`` one at a time (a generator, so that the kernel body decodes plane
    j right before its dot and only one decoded tile is live: see ``_kernel``)."""
    for asm in (RAW_ASM_PLANES if raw else ASM_PLANES)[layout]:
        [plane] = plgpu.elementwise_inline_asm(
            asm,
            args=[wq],
            constraints="=r,=r,r",
            pack=4,
            result_shape_dtypes=[jax.ShapeDtypeStruct(wq.shape, jnp.bfloat16)],
        )
        yield plane


def _magic(code: jax.Array) -> jax.Array:
    """The bf16 ``128 + code`` for an integer code below 128 (or, 2-bit's plane 3 in place,
    the codes 64 c: 128, 192, 256), via the 0x4300 magic number."""
    return lax.bitcast_convert_type(code.astype(jnp.uint16) | jnp.uint16(0x4300), jnp.bfloat16)


def _decode_jnp(wq: jax.Array, layout: str, raw: bool = False) -> Iterator[jax.Array]:
    """As :func:`_decode_asm`, with jnp bit operations (interpret mode, other GPUs)."""
    if layout == "2bit":
        for j in range(4):
            if raw:
                yield _magic(wq.astype(jnp.uint16) & jnp.uint16(3 << (2 * j)))
            else:
                yield _magic((wq >> (2 * j)) & 3) - jnp.bfloat16(129.0)
        return
    m = wq.astype(jnp.uint16)
    for _ in range(5):
        u = m * jnp.uint16(3)
        v = _magic(u >> 8)
        yield v if raw else v - jnp.bfloat16(129.0)
        m = u & jnp.uint16(0xFF)


def plane_affine(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` per plane with ``t = a_j v + b_j`` for the raw codes ``v`` of
    :data:`RAW_ASM_PLANES` (powers of two and small integers: x * a_j is exact in bf16)."""
    planes = layouts.TRITS_PER_BYTE[layout]
    a = 4.0 ** -np.arange(planes) if layout == "2bit" else np.ones(planes)
    return a, -(128.0 * a + 1.0)


def raw_code_operands(x: jax.Array, layout: str, rows: int) -> tuple[jax.Array, jax.Array]:
    """x for the raw-code kernel and its per-row offset: ``x'[:, j R + r] = a_j x[:, j R + r]``
    (bf16, exact; 1.6-bit's padding columns zero), and ``sum_j b_j sum_r x[:, j R + r]`` (f32),
    which the kernel's sums of ``x' v`` lack. The offset is up to 129 times the result's scale
    per term, so float32 sums lose about 7 of their 24 bits: far below bf16's output rounding."""
    m, k = x.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    a, b = plane_affine(layout)
    xp = jnp.pad(x, ((0, 0), (0, planes * rows - k))).reshape(m, planes, rows)
    x_scaled = (xp * jnp.asarray(a, jnp.bfloat16)[None, :, None]).reshape(m, planes * rows)
    per_plane = jnp.sum(xp.astype(jnp.float32), axis=2)
    return x_scaled, per_plane @ jnp.asarray(b, jnp.float32)


# ----------------------------------------------------------------------------------------------
# The kernels


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
    cfg: BlockConfig,
    steps_per_split: int,
    total_steps: int,
    scale_columns: bool,
):
    bm, bn, bk = cfg.block_m, cfg.block_n, cfg.block_k
    pid_n, pid_m, pid_s = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    n0 = pl.multiple_of(pid_n * bn, bn)
    m0 = pid_m * bm
    first = pid_s * steps_per_split
    count = jnp.minimum(steps_per_split, total_steps - first)
    decode = functools.partial(
        _decode_asm if cfg.decode == "asm" else _decode_jnp, raw=cfg.raw_codes
    )
    load_x = x_tile_loader(x_ref, m=m, k=k, rows=rows, m0=m0, bm=bm, bk=bk)

    def body(i, acc):
        r0 = pl.multiple_of((first + i) * bk, bk)
        wq = w_ref[pl.ds(r0, bk), pl.ds(n0, bn)]
        if cfg.weights_left:
            wq = wq.T
        # decode() yields plane by plane: plane j is decoded right before its dot, so one
        # decoded tile is live at a time (measured on an H100: 1.6-bit 158 -> 124 registers a
        # thread, 2-bit unchanged at 128; docs/benchmarks.md)
        for j, wj in enumerate(decode(wq, layout)):
            xj = load_x(j, r0)
            if cfg.weights_left:
                acc += jnp.dot(wj, xj.T, preferred_element_type=jnp.float32)
            else:
                acc += jnp.dot(xj, wj, preferred_element_type=jnp.float32)
        return acc

    acc_shape = (bn, bm) if cfg.weights_left else (bm, bn)
    acc = lax.fori_loop(0, count, body, jnp.zeros(acc_shape, jnp.float32))
    if cfg.weights_left:
        acc = acc.T
    write_tile(
        acc, s_ref, o_ref, m=m, m0=m0, n0=n0, pid_s=pid_s, cfg=cfg, scale_columns=scale_columns
    )


def x_tile_loader(x_ref, *, m: int, k: int, rows: int, m0, bm: int, bk: int):
    """``load_x(j, r0)``: the ``[bm, bk]`` x tile that plane j's packed rows ``r0..r0+bk``
    multiply (rows past M and K-columns past K, 1.6-bit's padding, read as 0)."""
    row_ok = (m0 + lax.broadcasted_iota(jnp.int32, (bm, bk), 0)) < m
    col = lax.broadcasted_iota(jnp.int32, (bm, bk), 1)

    def load_x(j: int, r0: jax.Array) -> jax.Array:
        c0 = j * rows + r0
        ref = x_ref.at[pl.ds(m0, bm), pl.ds(c0, bk)]
        mask = None
        if m % bm:
            mask = row_ok
        if (j + 1) * rows > k:  # only the last plane(s) of 1.6-bit reach the zero padding
            in_k = (c0 + col) < k
            mask = in_k if mask is None else mask & in_k
        if mask is None:
            return ref[...]
        return plgpu.load(ref, mask=mask, other=0.0)

    return load_x


def write_tile(acc, s_ref, o_ref, *, m: int, m0, n0, pid_s, cfg: BlockConfig, scale_columns: bool):
    """An MMA program's float32 ``[block_m, block_n]`` tile: its split-K partial sum (always
    with ``raw_codes``: the offset is added outside), or times gamma in the output dtype; rows
    past M are not written."""
    bm, bn = cfg.block_m, cfg.block_n
    if cfg.split_k > 1 or cfg.raw_codes:
        dst = o_ref.at[pid_s, pl.ds(m0, bm), pl.ds(n0, bn)]
    else:
        s = s_ref[:, pl.ds(n0, bn)] if scale_columns else s_ref[...]
        acc = (acc * s).astype(o_ref.dtype)
        dst = o_ref.at[pl.ds(m0, bm), pl.ds(n0, bn)]
    if m % bm:
        out_mask = (m0 + lax.broadcasted_iota(jnp.int32, (bm, bn), 0)) < m
        plgpu.store(dst, acc, mask=out_mask)
    else:
        dst[...] = acc


def check_kernel_shapes(x_shape: tuple[int, ...], packed_shape: tuple[int, ...], layout: str):
    """Raise a ValueError naming the shapes if the GPU kernel cannot take them."""
    layouts.check_layout(layout)
    if len(x_shape) != 2:
        raise ValueError(f"ternary_matmul: x must be 2-D [M, K], got shape {x_shape}")
    m, k = x_shape
    if len(packed_shape) != 2:
        raise ValueError(f"ternary_matmul: packed must be 2-D [R, N], got shape {packed_shape}")
    n = packed_shape[1]
    if m < 1 or k % KERNEL_K_MULTIPLE or n % KERNEL_N_MULTIPLE:
        raise ValueError(
            f"ternary_matmul kernel: x {x_shape}, packed {packed_shape}: needs M >= 1 and K, N "
            f"multiples of {KERNEL_K_MULTIPLE} (got K={k}, N={n}); use the reference for others"
        )
    want = layouts.packed_shape(k, n, layout)
    if tuple(packed_shape) != want:
        raise ValueError(
            f"ternary_matmul: packed shape {tuple(packed_shape)} does not fit x of shape "
            f"{x_shape} in the {layout} layout: expected {want}"
        )


def _check_config(cfg: BlockConfig, m: int, n: int, rows: int) -> None:
    pow2 = {"block_m": cfg.block_m, "block_n": cfg.block_n, "block_k": cfg.block_k}
    for name, v in pow2.items():
        least = 8 if cfg.gemv and name == "block_k" else 16
        if v < least or v & (v - 1):
            raise ValueError(f"BlockConfig.{name}={v}: must be a power of two >= {least}")
    if n % cfg.block_n or rows % cfg.block_k:
        raise ValueError(
            f"BlockConfig: block_n={cfg.block_n} must divide N={n} and block_k={cfg.block_k} "
            f"must divide the packed rows R={rows}"
        )
    if cfg.split_k < 1 or cfg.decode not in ("asm", "jnp"):
        raise ValueError(f"BlockConfig: split_k >= 1 and decode in (asm, jnp), got {cfg}")
    if cfg.x_int16 and not cfg.gemv:
        raise ValueError(f"BlockConfig.x_int16 needs gemv=True (got {cfg})")
    if cfg.raw_codes and (cfg.gemv or cfg.weights_left):
        raise ValueError(f"BlockConfig.raw_codes is an MMA kernel with weights right (got {cfg})")


@functools.partial(jax.jit, static_argnames=("layout", "config", "interpret"))
def ternary_matmul_pallas(
    x: jax.Array,
    packed: jax.Array,
    scale: jax.Array,
    layout: str = "2bit",
    config: BlockConfig | None = None,
    interpret: bool = False,
) -> jax.Array:
    """The Pallas kernel; see :func:`kernels_pallas.ternary_matmul` for the arguments."""
    check_kernel_shapes(x.shape, packed.shape, layout)
    if x.dtype != jnp.bfloat16:
        raise ValueError(f"ternary_matmul kernel: x must be bfloat16, got {x.dtype}")
    m, k = x.shape
    rows, n = packed.shape
    out_dtype = x.dtype
    cfg = config or preferred_config(layout, m, k, n)
    if interpret and cfg.decode == "asm":
        cfg = cfg.replace(decode="jnp")  # PTX cannot run in the interpreter
    if cfg.gemv and m > MAX_GEMV_M:
        cfg = cfg.replace(gemv=False, x_int16=False)  # a table entry measured at a smaller M
    if cfg.gemv:
        cfg = cfg.replace(raw_codes=False)
    _check_config(cfg, m, n, rows)
    s2d, scale_columns = scale_operand(scale, n)
    total_steps = rows // cfg.block_k
    split, steps_per_split = split_steps(total_steps, cfg.split_k)
    cfg = cfg.replace(split_k=split)
    if cfg.gemv:
        kernel, grid = (dp2a_kernel if cfg.x_int16 else gemv_kernel)(
            layout=layout,
            m=m,
            k=k,
            rows=rows,
            n=n,
            block_n=cfg.block_n,
            block_k=cfg.block_k,
            split=split,
            steps_per_split=steps_per_split,
            scale_columns=scale_columns,
            decode=cfg.decode,
        )
    else:
        if cfg.raw_codes:  # x pre-scaled per plane, padded to planes * R columns
            x, offset = raw_code_operands(x, layout, rows)
        kernel = functools.partial(
            _kernel,
            layout=layout,
            m=m,
            k=x.shape[1],
            rows=rows,
            cfg=cfg,
            steps_per_split=steps_per_split,
            total_steps=total_steps,
            scale_columns=scale_columns,
        )
        grid = (n // cfg.block_n, math.ceil(m / cfg.block_m), split)
    partials = split > 1 or cfg.raw_codes
    if partials:
        out_shape = jax.ShapeDtypeStruct((split, m, n), jnp.float32)
    else:
        out_shape = jax.ShapeDtypeStruct((m, n), x.dtype)
    kind = ("dp2a" if cfg.x_int16 else "gemv") if cfg.gemv else "mma"
    kind += "raw" if cfg.raw_codes else ""
    out = pl.pallas_call(
        kernel,
        out_shape=out_shape,
        grid=grid,
        name=f"ternary_{kind}_{layout.replace('.', 'p')}",  # what profiles show
        compiler_params=plgpu.CompilerParams(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
        interpret=interpret,
    )(x, packed, s2d)
    if not partials:
        return out
    out = out.sum(axis=0)
    if cfg.raw_codes:
        out = out + offset[:, None]
    return (out * s2d).astype(out_dtype)

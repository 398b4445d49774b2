"""Mosaic GPU (Hopper) kernel for ``x @ (scale * T)``: the decoded weights are ``wgmma``'s
register A operand, so decoded weights never go through shared memory (the Triton MMA kernel
stores each decoded tile there for ``wgmma``'s B operand and waits for every ``wgmma``), and x
is the B operand, so M only pads the MMA's N side (to 8).

It computes ``out^T = T^T x^T``: a CTA owns ``tile_n`` output columns (the MMA's M, 64 a
``wgmma``) and one K-range (its split). Each pipeline step (``plgpu.emit_pipeline``, TMA copies
``stages`` deep) brings ``[tile_n, block_k]`` packed bytes of the *transposed* packed matrix
(``[N, R]``: a column's bytes contiguous, the order the A operand wants) and x's
``[planes, M, block_k]`` tiles (one copy; x is laid out ``[planes, M, R]``) into shared memory.

Decoding is inline PTX on 4 bytes at a time (:func:`_decode_asm`), inside ``plgpu.inline_mgpu`` so
that it works on the registers themselves: the bytes are loaded in Mosaic's 8-bit WGMMA layout
(a thread holds 4 consecutive K-bytes of a row), and the two bf16x2 registers decoded from them
per plane are used, unmoved, as the 16-bit WGMMA layout's registers for K-columns
``{2c, 2c+1}`` and ``{8+2c, 9+2c}`` of the same 16-column group. That is a fixed permutation of
K within each group of 16 (:func:`fragment_k_order`); x's columns are permuted the same way
before the kernel, so the sum over K is unchanged and no shuffle is needed.

``MosaicConfig.in_flight`` decodes a step one plane at a time instead, with that many ``wgmma``s
left running while the next plane decodes (across steps too).

As ``BlockConfig(raw_codes=True)`` of ``triton_matmul.py``, the MMA takes the raw "magic" codes
``v`` (2-bit: ``128 + 4**j c``; 1.6-bit: ``128 + d``; one ``lop3`` or ``prmt`` a weight pair
and plane), with x's plane-j columns pre-scaled by ``a_j`` and one float32 offset a row added
after the kernel (:func:`kernels_pallas.triton_matmul.raw_code_operands`).

``MosaicConfig.int8`` takes the s8 ``wgmma`` instead (32 K an instruction): the weights are
bytes (2-bit: the codes ``T + 1``, a shift and an AND a plane and word; 1.6-bit: the digit
prefixes of the first four planes, a multiply a lane pair and a ``prmt`` a plane, and the last
digit), in the 8-bit register layout as loaded, so x needs no K permutation; x is quantized to
int16 a row (1.6-bit: its first planes folded to match the prefixes) and split into two signed
bytes, which are the MMA's N columns (``2 m_pad``), and the int32 sums are
recombined (:func:`int8_operands`, :func:`finish_int8`): with one split by the kernel itself,
which then writes the bf16 product (:func:`_int8_finish_fn`), so that a call is x's preparation
and this kernel, two launches; with more, by XLA after it. ``MosaicConfig.x_in_kernel`` (M up
to 4; the rules take it up to M = 3) has each CTA prepare x itself in a prologue
(:func:`_x_prologue`, :func:`_x_store_fn`) while its first copies are in flight: one
launch a call.

Only a GPU with Mosaic GPU (sm_90a) runs it; jax's CPU interpreter has no register-A ``wgmma``,
so the CPU tests check its host-side arithmetic (K order, operands, epilogue) against float64
and that it lowers.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from kernels_pallas import layouts

WGMMA_M = 64
"""Rows of one ``wgmma`` (output columns here)."""
K_GROUP = 16
"""K-columns of one ``wgmma`` instruction for bf16, over which the fragment order repeats."""


@dataclasses.dataclass(frozen=True)
class MosaicConfig:
    """Tiling of one launch of :func:`mosaic_ternary_matmul`.

    tile_n: output columns a CTA (a multiple of 64: one ``wgmma`` M-group each).
    block_k: packed rows a pipeline step (32, 64 or 128: a swizzle width in bytes).
    split_k: CTAs sharing an output tile, each over a contiguous range of steps.
    stages: TMA copies in flight (``max_concurrent_steps``).
    compute_wgs: 1: one warpgroup loads (``emit_pipeline``), decodes and multiplies;
      2: warp-specialized (``emit_pipeline_warp_specialized``): a memory warpgroup issues the
      copies and two compute warpgroups take ``tile_n / 2`` columns each, so that one decodes
      while the other's ``wgmma``s run.
    in_flight: 0: a step decodes all its planes, issues their ``wgmma``s and waits for them;
      k >= 1: a step decodes one plane at a time and waits after each plane's ``wgmma`` until
      at most k are in flight, across steps too (x's tiles are released a step late), so
      that decoding the next plane overlaps the last ones' ``wgmma``s. Fewer than the planes
      a step (a plane's registers are the same PTX registers in the next step, which would
      overwrite them under a running ``wgmma``); needs 2 or more stages.
    int8: False: bf16 ``wgmma`` on raw codes (x pre-scaled bf16); True: s8 ``wgmma`` (32 K a
      instruction, half as many) on the weights as bytes (:func:`_int8_decode_asm`), x quantized
      to int16 a row and split into two signed bytes (:func:`int8_operands`), int32 sums.
      block_k 64 or 128 (Mosaic has no s8 register operand at a 32-byte swizzle).
    x_in_kernel: with int8, one split, one warpgroup and ``in_flight`` 0, for M up to
      ``X_IN_KERNEL_MAX_M``: each CTA prepares x itself in a prologue (:func:`_x_prologue`,
      :func:`_x_store_fn`) under its first copies, so that a call is one launch instead of
      two; the rules take it up to ``X_IN_KERNEL_RULE_MAX_M``.
      ``benchmarks/mosaic_wgmma_probe.py``'s check covers it.
    """

    tile_n: int = 128
    block_k: int = 64
    split_k: int = 1
    stages: int = 3
    compute_wgs: int = 1
    in_flight: int = 0
    int8: bool = False
    x_in_kernel: bool = False

    def replace(self, **changes: object) -> MosaicConfig:
        return dataclasses.replace(self, **changes)

    @property
    def tile_wg(self) -> int:
        """Output columns a compute warpgroup."""
        return self.tile_n // self.compute_wgs

    @classmethod
    def parse(cls, text: str) -> MosaicConfig:
        """``tile_n/block_k/split_k/stages/compute_wgs[/in_flight[/int8[/x_in_kernel]]]`` (the
        flags 0 or 1), the form the benchmark scripts take on their command lines."""
        try:
            values: list = [int(v) for v in text.split("/")]
            if not 5 <= len(values) <= 8 or any(v not in (0, 1) for v in values[6:]):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"Mosaic tiling {text!r}: expected tile_n/block_k/split_k/stages/compute_wgs"
                "[/in_flight[/int8[/x_in_kernel]]] as integers (the flags 0 or 1), e.g. "
                "128/64/2/3/1"
            ) from None
        values[6:] = [bool(v) for v in values[6:]]
        return cls(*values)


MOSAIC_MIN_M, MOSAIC_MAX_M = 17, 128
"""The M range where :func:`use_mosaic` takes this kernel: below, the CUDA-core and Triton MMA
kernels were faster on the H200 (M = 1; M = 16 but on the largest layers); above, untimed
(the kernel takes M up to 256)."""
MOSAIC_MIN_N = 8192
"""Narrower layers fill too few CTAs of 128 columns: on the H200 the Triton kernels won on
3072 x 3072 and 9216 x 3072 at every M, and the Mosaic kernel on every N >= 8192 at M = 32 to
128 of the shapes then timed (K of 3072 and 8192)."""
MOSAIC_MIN_WEIGHTS = 3 << 24
"""Fewest weights (K * N, about 50 M) for which the rules take this kernel at M = 17 to 128: on
2048 x 8192 (2**24) at M = 64, in two H200 tables of 24-call jits, it took 25.5 / 18.5 us (2-bit)
and 33.7 / 26.8 (1.6-bit) against 16.2 / 16.2 and 17.9 / 17.8 for the Triton kernels and 16.9 /
15.7 for bf16: the Mosaic call's floor of about 20 us. 8192 x 8192 (2**26) took 26.4 / 26.2
against 38.4 / 38.2 (1.6-bit 26.0 / 26.3 against 46.4 / 46.1), and 3072 x 18432 (56.6 M) its
table's Mosaic entries. Between them (the 1B's fused gate|up, 2048 x 16384) nothing was timed."""
MOSAIC_M16_MIN_WEIGHTS = 1 << 27
"""From this many weights (K * N) up, M = ``MOSAIC_SMALL_MIN_M`` to 16 takes this kernel too
(the s8 MMA with its own epilogue; 8192 x 28672 on the H200, three rounds each: 2-bit at M = 4
30.3-39.2 us against 43.6 for the Triton kernels, at M = 8 32.6-36.0 against 44.9, 1.6-bit
31.9-35.6 against 54.4 and 32.7-50.2 against 56.1). 8192 x 8192 (2**26) stays with Triton:
2-bit 17-19 us there against 20-32, the Mosaic call's own floor; 1.6-bit level up to M = 8
and 12% faster at M = 16 (22.4-23.3 against 26.1), which its table entry does not take yet."""
MOSAIC_SMALL_MIN_M = 1
"""The smallest M that the largest layers give this kernel. On the H200's 8192 x 28672 at M = 1
it took 22.5-22.9 us of GPU time against 27.1-27.5 for the CUDA-core kernels (2-bit; 1.6-bit
28.2-28.6 against 31.4-31.7, six traced calls) and, in jits of 24 calls (``kernels.py
--min-calls 24``), 24.0 against 27.6 us (1.6-bit 30.5 against 32.2). In jits of 2 or 3 calls the
host's cost of each execution hides that (docs/benchmarks.md)."""
X_IN_KERNEL_RULE_MAX_M = 3
"""Up to this M the rules prepare x in the s8 kernel (``MosaicConfig.x_in_kernel``). On the
H200's 8192 x 28672 (GPU time a call, 2026-12-02, late evening, with x prepared in registers
under the first copies): M = 1 19.4 us (2-bit) and 20.2 (1.6-bit) against 22.5-22.7 and 23.7-24.0
for the preparation's launch and the kernel; M = 2 20.6 / 21.7 against 22.9 / 23.9; M = 3
21.6 / 23.6 against 23.3 / 24.8; M = 4 26.4 / 30.2 against 23.0 / 23.6 (slower: the rule
stops at 3). The evening's form (x through shared memory before the first copy) was taken at
M = 1 alone: 21.1-21.5 / 22.0-22.2 there."""
X_IN_KERNEL_SMALL_TILE_N = 64
"""Columns a CTA for ``x_in_kernel`` on the layers where :func:`use_mosaic` gives the Triton
kernels (:func:`small_layer_mosaic_config`). On the H200 at M = 1 (GPU busy time a call,
2026-12-02, late evening; 2-bit / 1.6-bit) 64 columns took 8192 x 8192 in 10.7 / 10.2 us
against 13.1 / 13.5 at 128 and 13.4 / 14.0 for the Triton path, 3072 x 18432 in 7.2 / 7.9
against 8.2 / 9.2 and 11.4 / 11.7; on 8192 x 28672 (224 tiles of 128, its own rule) 64 was
slower: 23.7 / 23.7 against 19.5 / 20.3. The Spectra 3.9B (30 layers, fused projections)
decoded a token in 1.476 / 1.522 ms with it against 1.602 / 1.604 without (batch 1), 1.570 /
1.527 against 1.702 / 1.861 (batch 2)."""
X_IN_KERNEL_SMALL_MIN_WEIGHTS = 3072 * 3072
"""Fewest weights for :func:`small_layer_mosaic_config`: the smallest layer timed. At M = 1 on
the H200 (GPU busy time a call) 3072 x 3072 took 5.0 / 5.0 us against 9.7 / 6.1 for the
Triton path, 3072 x 9216 5.8 / 6.0 against 7.6 / 8.3; at M = 2 and 3 8192 x 8192 11.7-12.1 /
11.4-13.6 against 15.3-15.5 / 19.3, 3072 x 18432 8.1-8.3 / 8.7-9.5 against 14.6-14.7 / 18.1."""
INT8_MAX_M = 16
"""Up to this M the rules take the s8 MMA (``MosaicConfig.int8``): on the H200's 8192 x 28672 at
M = 16 it ran 2-bit in 31.6-42.7 us against 38.5-52.0 for the bf16 MMA's best tiling, 1.6-bit in
39.9-46.8 against 49.1-55.6; at M = 64 it was 25-45% slower (two N columns a row of x)."""
MIN_STEPS_PER_SPLIT = 4
"""Fewest pipeline steps a CTA: a 1.6-bit 8192 x 8192 at M = 64 took 48.8 us at 2 steps a CTA
(split 13) against 29.8 at 13 (split 2); 5 steps were fine (3072 x 18432, split 2)."""


def is_hopper(device: jax.Device) -> bool:
    """A GPU of compute capability 9.x (H100, H200, H800, GH200): where Mosaic's ``wgmma``
    kernel runs."""
    if device.platform != "gpu":
        return False
    cc = str(getattr(device, "compute_capability", "") or "")
    if cc:
        return cc.split(".")[0] == "9"
    kind = device.device_kind.upper()
    return any(name in kind for name in ("H100", "H200", "H800", "H20", "GH200"))


def use_mosaic(m: int, k: int, n: int) -> bool:
    """Whether ``ternary_matmul`` takes this kernel for ``[M, K] x [K, N]`` where no measured
    table says (given the packed matrix transposed and a Hopper GPU): ``MOSAIC_MIN_M <= M <=
    MOSAIC_MAX_M`` with N >= ``MOSAIC_MIN_N`` and ``MOSAIC_MIN_WEIGHTS`` weights, or M from
    ``MOSAIC_SMALL_MIN_M`` on from ``MOSAIC_M16_MIN_WEIGHTS`` weights."""
    if MOSAIC_MIN_M <= m <= MOSAIC_MAX_M:
        return n >= MOSAIC_MIN_N and k * n >= MOSAIC_MIN_WEIGHTS
    return MOSAIC_SMALL_MIN_M <= m < MOSAIC_MIN_M and k * n >= MOSAIC_M16_MIN_WEIGHTS


def small_layer_mosaic_config(layout: str, m: int, k: int, n: int) -> MosaicConfig | None:
    """The Mosaic tiling for a layer that :func:`use_mosaic` leaves to the Triton kernels, or
    None: up to M = ``X_IN_KERNEL_RULE_MAX_M`` and from ``X_IN_KERNEL_SMALL_MIN_WEIGHTS``
    weights, x prepared in the kernel on ``X_IN_KERNEL_SMALL_TILE_N`` columns a CTA (one
    launch; more CTAs than 128 columns give these layers) where it fits (a per-tensor scale
    assumed; ``ternary_matmul`` goes back to the Triton kernels for gammas its epilogue cannot
    take)."""
    if m > X_IN_KERNEL_RULE_MAX_M or k * n < X_IN_KERNEL_SMALL_MIN_WEIGHTS:
        return None
    cfg = MosaicConfig(X_IN_KERNEL_SMALL_TILE_N, 128, 1, 2, int8=True, x_in_kernel=True)
    return cfg if x_in_kernel_ok(cfg, layout, m, k, n, ()) else None


def preferred_mosaic_config(
    layout: str, m: int, k: int, n: int, device: jax.Device
) -> MosaicConfig | None:
    """The Mosaic tiling for this point on ``device``, or None where the Triton kernels are the
    faster choice: the device's measured table (kernels_pallas/tuned, ``"mosaic"`` entries)
    where it covers the point, else :func:`use_mosaic` and :func:`default_mosaic_config`, else
    :func:`small_layer_mosaic_config`."""
    from kernels_pallas.triton_matmul import num_sms
    from kernels_pallas.tuning import tuned_mosaic_config

    measured, config = tuned_mosaic_config(layout, m, k, n, device.device_kind)
    if measured:
        return config
    if not use_mosaic(m, k, n):
        return small_layer_mosaic_config(layout, m, k, n)
    return default_mosaic_config(layout, m, k, n, num_sms(device))


def even_split(steps: int, tiles: int, ctas: int) -> int:
    """Split-K for ``tiles`` output tiles over ``steps`` pipeline steps: a divisor of the steps
    (the kernel has no ragged split), the smallest giving ``ctas`` CTAs among those that keep
    ``MIN_STEPS_PER_SPLIT`` steps a CTA, else the largest of those."""
    divisors = [d for d in range(1, steps + 1) if steps % d == 0]
    allowed = [d for d in divisors if steps // d >= MIN_STEPS_PER_SPLIT] or [1]
    return next((d for d in allowed if d * tiles >= ctas), allowed[-1])


def default_mosaic_config(layout: str, m: int, k: int, n: int, num_sms: int = 132) -> MosaicConfig:
    """Tiling rules where no table covers a point (from the H200 sweeps in docs/benchmarks.md):
    up to M = ``INT8_MAX_M`` the s8 MMA, 128 columns and 128 packed rows a step (64 where 128
    does not divide R), 2 stages, and no split-K once the tiles fill every SM (one split
    writes the product in the kernel, :func:`fused_int8_epilogue`: on the H200's 8192 x 28672,
    224 tiles, split 1 beat split 2 at M = 1 to 16), and up to M = ``X_IN_KERNEL_RULE_MAX_M``
    x prepared in the kernel (``x_in_kernel``) where it fits; else
    128 output columns a CTA and 64 packed rows a step (32 where 64 does not divide R);
    2-bit: one warpgroup, 2 stages; 1.6-bit: warp-specialized, 4 stages; above M = 64 one
    warpgroup, 2 stages and 32 rows a step (the x tiles grow with M: shared memory). Split-K
    aims at two CTAs an SM (:func:`even_split`)."""
    rows = layouts.rows_per_plane(k, layout)
    tile_n = 128 if n % 128 == 0 else 64
    if m <= INT8_MAX_M and rows % 64 == 0:
        block_k = 128 if rows % 128 == 0 else 64
        tiles = n // tile_n
        split = 1 if tiles >= num_sms else even_split(rows // block_k, tiles, num_sms)
        cfg = MosaicConfig(tile_n, block_k, split, stages=2, compute_wgs=1, int8=True)
        in_kernel = cfg.replace(x_in_kernel=True)
        if m <= X_IN_KERNEL_RULE_MAX_M and x_in_kernel_ok(in_kernel, layout, m, k, n, ()):
            return in_kernel
        return cfg
    block_k = 64 if rows % 64 == 0 and m <= 64 else 32
    split = even_split(rows // block_k, n // tile_n, 2 * num_sms)
    if layout == "2bit" or m > 64:
        return MosaicConfig(tile_n, block_k, split, stages=2, compute_wgs=1)
    return MosaicConfig(tile_n, block_k, split, stages=4, compute_wgs=2)


def padded_m(m: int) -> int:
    """x's rows in the kernel (the MMA's N, a multiple of 8)."""
    return max(8, -(-m // 8) * 8)


def fragment_k_order(k: int) -> np.ndarray:
    """``order[p]`` = the K-index whose x column the kernel's MMA takes at position p.

    Within each group of 16, a thread's 4 bytes ``4c .. 4c+3`` (8-bit WGMMA layout) become the
    bf16 registers at positions ``{2c, 2c+1}`` and ``{8+2c, 9+2c}`` (16-bit WGMMA layout):
    byte q = 4c + 2h + l sits at p = 8h + 2c + l.
    """
    if k % K_GROUP:
        raise ValueError(f"fragment_k_order: K={k} is not a multiple of {K_GROUP}")
    q = np.arange(k).reshape(k // K_GROUP, 4, 2, 2)  # [group, c, h, l]
    return q.transpose(0, 2, 1, 3).reshape(k)  # position p = [group, h, c, l]


def mosaic_operands(
    x: jax.Array, layout: str, rows: int, m_pad: int
) -> tuple[jax.Array, jax.Array]:
    """x for the kernel, ``[planes, m_pad, R]`` bf16 (raw-code scaling, fragment K order,
    rows past M zero), and the raw codes' float32 offset a row ``[M]``.

    The K permutation is a reshape and transpose, not :func:`fragment_k_order` as an index
    array, which XLA ran as a gather kernel of its own."""
    from kernels_pallas.triton_matmul import plane_affine

    m, k = x.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    a, b = plane_affine(layout)
    xp = jnp.pad(x, ((0, m_pad - m), (0, planes * rows - k))).reshape(m_pad, planes, rows)
    offset = jnp.sum(xp[:m].astype(jnp.float32), axis=2) @ jnp.asarray(b, jnp.float32)
    x_scaled = xp * jnp.asarray(a, jnp.bfloat16)[None, :, None]
    groups = rows // K_GROUP
    x_perm = x_scaled.reshape(m_pad, planes, groups, 4, 2, 2).transpose(1, 0, 2, 4, 3, 5)
    return x_perm.reshape(planes, m_pad, rows), offset


def finish(partials: jax.Array, offset: jax.Array, scale: jax.Array, m: int, dtype) -> jax.Array:
    """``[split, N, m_pad]`` float32 partial sums of ``x' v`` to ``x @ (scale * T)`` ``[M, N]``:
    sum the splits, drop the padding rows, transpose, add the offset, scale, cast."""
    from kernels_pallas.triton_matmul import scale_operand

    s, _ = scale_operand(scale, partials.shape[1])
    out = partials.sum(axis=0)[:, :m].T + offset[:, None]
    return (out * s).astype(dtype)


INT8_X_BYTES_MAX = 127 * 256
"""Largest ``|v|`` of an x value that the s8 MMA takes as two signed bytes, ``v = 256 hi + lo``
with ``hi = (v + 128) >> 8`` in [-127, 127] and ``lo`` in [-128, 127]."""
FOLDED_PLANES = {"2bit": 0, "1.6bit": 3}
"""Planes ``j`` whose x values the s8 kernel takes as ``q_j - 3 q_(j+1)`` (:func:`int8_operands`):
the 1.6-bit kernel multiplies planes 0 to 3 by the digit prefixes ``P_j`` (at most 80, a signed
byte) rather than by the digits, and ``sum_j d_j q_j = sum_(j<3) P_j (q_j - 3 q_(j+1)) + P_3 q_3
+ d_4 q_4`` for the digits ``d_j = P_j - 3 P_(j-1)`` (:func:`_int8_decode_asm`)."""
INT8_X_MAX = {"2bit": INT8_X_BYTES_MAX, "1.6bit": INT8_X_BYTES_MAX // 4}
"""Largest ``|q|`` of x quantized for the s8 MMA (``MosaicConfig.int8``), per layout: 2-bit
32512 (the rounding costs at most ``max|x| / 65024`` an element, far below bf16's own); 1.6-bit
8128, so that the folded values ``q_j - 3 q_(j+1)`` (:data:`FOLDED_PLANES`) fit two bytes: at
most ``max|x| / 16256`` an element, still below bf16's ``|x| / 512`` for all but x's smallest
values (the CUDA-core integer kernel's 1.6-bit x has 13 bits too, ``triton_dp2a.X_MAX``)."""


def int8_operands(
    x: jax.Array, layout: str, rows: int, m_pad: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """x for the s8 kernel: ``[planes, 2 m_pad, R]`` int8 (rows ``i``: the low bytes of row i's
    values, ``m_pad + i``: their high bytes; rows past M and K's padding zero), the quantization
    scale a row ``[m_pad]`` (float32, ``x ~ scale q``; 1 past M) and the offset
    ``[planes, m_pad]`` (int32, plane j's ``sum_r q_j``), which the kernel's sums carry on top
    of ``sum_k T q``. The kernel takes
    :func:`kernels_pallas.int8_prep.int8_operands_pallas` (the same in one launch); this is its
    reference.

    A row of x is quantized to ``q`` (``|q| <= INT8_X_MAX[layout]``, round to nearest); plane
    j's values are ``q_j``, or ``q_j - 3 q_(j+1)`` for the 1.6-bit layout's planes 0 to 2
    (:data:`FOLDED_PLANES`), whose weights are the digit prefixes. Either way the kernel's
    ``sum_j A_j v_j`` (``A_j``: the plane's s8 weights) is ``sum_k (T + 1) q``, and subtracting
    ``sum_k q`` leaves ``sum_k T q``: exact, int32.

    No K permutation: s8 ``wgmma`` takes the 8-bit register layout's 4 bytes of a thread as 4
    consecutive K, so the packed bytes are the A operand as loaded."""
    m, k = x.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    xf = jnp.pad(x.astype(jnp.float32), ((0, m_pad - m), (0, planes * rows - k)))
    amax = jnp.max(jnp.abs(xf), axis=1)
    xscale = jnp.where(amax > 0, amax / INT8_X_MAX[layout], 1.0)
    q = jnp.round(xf * (1.0 / xscale)[:, None]).astype(jnp.int32).reshape(m_pad, planes, rows)
    folded = FOLDED_PLANES[layout]
    v = q.at[:, :folded].add(-3 * q[:, 1 : folded + 1])
    hi = (v + 128) >> 8
    halves = jnp.concatenate([v - (hi << 8), hi])  # [2 m_pad, planes, R]: lo rows, then hi
    xq = halves.astype(jnp.int8).transpose(1, 0, 2)
    offset = q.sum(axis=2, dtype=jnp.int32).T  # [planes, m_pad], exact
    return xq, xscale, offset


def finish_int8(
    partials: jax.Array,
    offset: jax.Array,
    xscale: jax.Array,
    scale: jax.Array,
    m: int,
    dtype,
) -> jax.Array:
    """``[split, N, 2 m_pad]`` int32 sums of the s8 weights times x's low and high bytes to
    ``x @ (scale * T)`` ``[M, N]``: sum the splits and subtract the offset from the low bytes'
    sums (``[planes, m_pad]``, :func:`int8_operands`; exact, int32), then ``256 hi + lo`` in
    float32, transpose, x's scale and the columns' scale, cast."""
    from kernels_pallas.triton_matmul import scale_operand

    m_pad = partials.shape[2] // 2
    s, _ = scale_operand(scale, partials.shape[1])
    d = partials.sum(axis=0)
    lo = d[:, :m] - offset.sum(axis=0)[None, :m]
    out = 256.0 * d[:, m_pad : m_pad + m].astype(jnp.float32) + lo.astype(jnp.float32)
    return (out.T * xscale[:m, None] * s).astype(dtype)


# ----------------------------------------------------------------------------------------------
# Decoding, on the registers of one [tile_n, block_k] tile of packed bytes


def _spread_lines(src: str, lo: str, hi: str) -> list[str]:
    """PTX spreading the 4 bytes of ``src`` to the 16-bit lanes of ``lo`` (bytes 0, 1) and
    ``hi`` (bytes 2, 3); needs a register ``z`` holding 0."""
    return [f"prmt.b32 {lo}, {src}, z, 0x4140;", f"prmt.b32 {hi}, {src}, z, 0x4342;"]


def _decode_asm(layout: str) -> tuple[str, int]:
    """PTX taking 4 packed bytes ($P, P = outputs) to 2 bf16x2 raw codes a plane
    ($2j: bytes 0,1; $2j+1: bytes 2,3), and the number of outputs."""
    planes = layouts.TRITS_PER_BYTE[layout]
    src = f"${2 * planes}"
    lines = [
        "{",
        ".reg .b32 lo, hi, mg, z;",
        "mov.b32 mg, 0x43;",
        "mov.b32 z, 0;",
        *_spread_lines(src, "lo", "hi"),
    ]
    if layout == "2bit":
        for j in range(4):  # code bits in place inside 0x4300's mantissa: 128 + 4**j c
            mask = 3 << (2 * j)
            for r, half in enumerate(("lo", "hi")):
                lines.append(
                    f"lop3.b32 ${2 * j + r}, {half}, 0x{mask:04x}{mask:04x}, 0x43004300, 0xea;"
                )
    else:
        # m_{j+1} = 3 m_j mod 256 per lane; digit j = (3 m_j) >> 8 = byte 1 of the lane
        for j in range(5):
            for r, half in enumerate(("lo", "hi")):
                lines.append(f"mul.lo.u32 {half}, {half}, 3;")
                lines.append(f"prmt.b32 ${2 * j + r}, {half}, mg, 0x4341;")
                if j < 4:
                    lines.append(f"and.b32 {half}, {half}, 0x00ff00ff;")
    lines.append("}")
    return "\n".join(lines), 2 * planes


SPREAD_ASM = "\n".join(
    ["{", ".reg .b32 z;", "mov.b32 z, 0;", *_spread_lines("$2", "$0", "$1"), "}"]
)
"""The plane-wise decode's first block: 4 packed bytes ($2) spread to the 16-bit lanes of $0
(bytes 0, 1) and $1 (bytes 2, 3), the state that :func:`_plane_asm` reads."""


def _plane_asm(layout: str, j: int) -> tuple[str, int]:
    """PTX taking one register of the spread state (its last operand) to plane j's bf16x2 raw
    codes ($0: the same registers as :func:`_decode_asm`'s $2j or $2j+1) and, for the 1.6-bit
    layout's planes before the last, the next plane's state ($1); and the number of outputs."""
    if layout == "2bit":
        mask = 3 << (2 * j)
        return f"lop3.b32 $0, $1, 0x{mask:04x}{mask:04x}, 0x43004300, 0xea;", 1
    outs = 2 if j < layouts.TRITS_PER_BYTE[layout] - 1 else 1
    lines = [
        "{",
        ".reg .b32 m, mg;",
        "mov.b32 mg, 0x43;",
        f"mul.lo.u32 m, ${outs}, 3;",
        "prmt.b32 $0, m, mg, 0x4341;",
    ]
    if outs == 2:
        lines.append("and.b32 $1, m, 0x00ff00ff;")
    lines.append("}")
    return "\n".join(lines), outs


FRAGMENT_K_AXIS = 1
"""Axis of the register arrays (both WGMMA layouts, 2-D tiles) that counts K-groups: 16-column
groups in the 8-bit layout, 8-column ones in the 16-bit layout."""


def bf16_register_of(byte_register: tuple[int, ...], half: int) -> tuple[int, ...]:
    """The 16-bit WGMMA register that the kernel fills from bytes ``2 half, 2 half + 1`` of an
    8-bit WGMMA register (its register-array index): the same rows, K-group ``2 g + half``."""
    dst = list(byte_register)
    dst[FRAGMENT_K_AXIS] = 2 * byte_register[FRAGMENT_K_AXIS] + half
    return tuple(dst)


def _run_asm(asm: str, outs: int, *words) -> list:
    """The i32 results of inline PTX ``asm`` on i32 registers (its last operands)."""
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import llvm

    i32 = ir.IntegerType.get_signless(32)
    struct = llvm.StructType.get_literal([i32] * outs)
    constraints = ",".join(["=r"] * outs + ["r"] * len(words))
    res = llvm.inline_asm(struct, list(words), asm, constraints)
    return [llvm.extractvalue(i32, res, [i]) for i in range(outs)]


def _as_i32(register):
    from jax.experimental.mosaic.gpu import utils as mgpu_utils
    from jaxlib.mlir import ir

    return mgpu_utils.bitcast(register, ir.IntegerType.get_signless(32))


def _as_bf16x2(value):
    from jax.experimental.mosaic.gpu import utils as mgpu_utils
    from jaxlib.mlir import ir

    return mgpu_utils.bitcast(value, ir.VectorType.get((2,), ir.BF16Type.get()))


def _as_i8x4(value):
    from jax.experimental.mosaic.gpu import utils as mgpu_utils
    from jaxlib.mlir import ir

    return mgpu_utils.bitcast(value, ir.VectorType.get((4,), ir.IntegerType.get_signless(8)))


def _wgmma_array(registers: np.ndarray):
    from jax.experimental.mosaic.gpu import fragmented_array as fa

    return fa.FragmentedArray(_registers=registers, _layout=fa.WGMMA_LAYOUT, _is_signed=None)


def _s8_array(registers: np.ndarray):
    from jax.experimental.mosaic.gpu import fragmented_array as fa

    return fa.FragmentedArray(_registers=registers, _layout=fa.WGMMA_LAYOUT_8BIT, _is_signed=True)


def _byte_words_to_tiles(byte_registers: np.ndarray, shape: tuple[int, int], asm: str, outs: int):
    """``asm`` on each 4-byte register of a uint8 tile (8-bit WGMMA layout): its outputs
    ``2t, 2t+1`` become the registers of bf16 tile t (WGMMA layout) that hold those bytes'
    columns (:func:`bf16_register_of`, halves 0 and 1); the ``outs // 2`` tiles."""
    from jax.experimental.mosaic.gpu import fragmented_array as fa

    out_shape = fa.WGMMA_LAYOUT.registers_shape(shape)
    if byte_registers.shape[FRAGMENT_K_AXIS] * 2 != out_shape[FRAGMENT_K_AXIS]:
        raise AssertionError(f"register shapes {byte_registers.shape} -> {out_shape}")
    tiles = [np.empty(out_shape, dtype=object) for _ in range(outs // 2)]
    for idx in np.ndindex(byte_registers.shape):
        results = _run_asm(asm, outs, _as_i32(byte_registers[idx]))
        for i, v in enumerate(results):
            tiles[i // 2][bf16_register_of(idx, i % 2)] = _as_bf16x2(v)
    return tuple(_wgmma_array(t) for t in tiles)


def _decode_fn(layout: str, shape: tuple[int, int]):
    """``plgpu.inline_mgpu`` function: uint8 tile in the 8-bit WGMMA layout -> one bf16 tile a
    plane in the WGMMA layout (raw codes, K in :func:`fragment_k_order` within 16-groups)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    asm, outs = _decode_asm(layout)
    out_type = plgpu.ShapeDtypeStruct(shape, jnp.bfloat16, layout=plgpu.Layout.WGMMA)

    @plgpu.inline_mgpu(arg_types=(plgpu.Layout.WGMMA_8BIT,), return_type=(out_type,) * (outs // 2))
    def decode(ctx, w8):
        del ctx
        return _byte_words_to_tiles(w8.registers, shape, asm, outs)

    return decode


def _plane_decode_fns(layout: str, shape: tuple[int, int]):
    """``(spread, planes)``: ``plgpu.inline_mgpu`` functions for the plane-wise decode
    (``MosaicConfig.in_flight``): ``spread(w8)`` takes the uint8 tile (8-bit WGMMA layout) to
    the state, a bf16-typed tile in the WGMMA layout whose registers hold the bytes in 16-bit
    lanes (the registers :func:`_decode_fn` fills); ``planes[j](state)`` gives plane j's tile
    (as :func:`_decode_fn`'s j-th) and the next plane's state (the same state for 2-bit)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    out_type = plgpu.ShapeDtypeStruct(shape, jnp.bfloat16, layout=plgpu.Layout.WGMMA)

    def plane_fn(j: int):
        asm, outs = _plane_asm(layout, j)

        @plgpu.inline_mgpu(arg_types=(plgpu.Layout.WGMMA,), return_type=(out_type,) * outs)
        def plane(ctx, state):
            del ctx
            regs = [np.empty(state.registers.shape, dtype=object) for _ in range(outs)]
            for idx in np.ndindex(state.registers.shape):
                results = _run_asm(asm, outs, _as_i32(state.registers[idx]))
                for r, v in zip(regs, results, strict=True):
                    r[idx] = _as_bf16x2(v)
            return tuple(_wgmma_array(r) for r in regs)

        def run(state):
            results = plane(state)
            return results[0], (results[1] if outs == 2 else state)

        return run

    planes = [plane_fn(j) for j in range(layouts.TRITS_PER_BYTE[layout])]
    return _spread_fn(shape), planes


def _spread_fn(shape: tuple[int, int]):
    """uint8 tile (8-bit WGMMA layout) -> the plane-wise decode's state: a bf16-typed tile in
    the WGMMA layout whose registers hold the bytes in 16-bit lanes (:data:`SPREAD_ASM`)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    out_type = plgpu.ShapeDtypeStruct(shape, jnp.bfloat16, layout=plgpu.Layout.WGMMA)

    @plgpu.inline_mgpu(arg_types=(plgpu.Layout.WGMMA_8BIT,), return_type=(out_type,))
    def spread(ctx, w8):
        del ctx
        return _byte_words_to_tiles(w8.registers, shape, SPREAD_ASM, 2)

    return lambda w8: spread(w8)[0]


THREE_NEG = 0xFFFFFFFD
"""-3 as a u32: ``mad.lo.u32 d, p, THREE_NEG, q`` is ``q - 3 p``."""


def _digit_prefix_lines(dst: str, j: int, lo: str = "lo", hi: str = "hi") -> list[str]:
    """PTX taking the bytes in 16-bit lanes (``lo``: bytes 0, 1; ``hi``: bytes 2, 3; the
    :func:`_spread_lines` state) to ``P_j = floor(3**(j + 1) b / 256)`` of each byte b, a byte
    each in the word's order, in ``dst``; uses ``a``, ``b``. No mask: ``3**5 * 255 < 2**16``,
    so a lane never carries into the next, and ``P_4 <= 242`` fits its byte."""
    return [
        f"mul.lo.u32 a, {lo}, {3 ** (j + 1)};",
        f"mul.lo.u32 b, {hi}, {3 ** (j + 1)};",
        f"prmt.b32 {dst}, a, b, 0x7531;",  # each lane's byte 1
    ]


def _int8_decode_asm(layout: str) -> tuple[str, int]:
    """PTX taking 4 packed bytes ($P, P = outputs) to each plane's 4 s8 weights, a byte each in
    the same order ($j: plane j), and the number of outputs (the planes).

    2-bit: the codes ``T + 1`` in {0, 1, 2}, a shift and an AND a plane. 1.6-bit: the bytes in
    16-bit lanes, then planes 0 to 3 as the digit prefixes ``P_j = floor(3**(j + 1) b / 256)``
    of the byte's first j + 1 digits (at most 80; a multiply a lane pair and one ``prmt``,
    :func:`_digit_prefix_lines`), and plane 4 as its digit ``P_4 - 3 P_3`` (one more ``mad`` on
    all four bytes: ``3 P_3 <= 240`` and the digit >= 0, so no byte carries or borrows). x's
    planes 0 to 2 come folded to match (:data:`FOLDED_PLANES`). 18 instructions a word, where
    the digits of every plane took 21 and masking each ``3 m_j mod 256`` back to its byte 25."""
    planes = layouts.TRITS_PER_BYTE[layout]
    src = f"${planes}"
    if layout == "2bit":
        lines = ["{", ".reg .b32 s;", f"and.b32 $0, {src}, 0x03030303;"]
        for j in range(1, planes):
            lines += [f"shr.b32 s, {src}, {2 * j};", f"and.b32 ${j}, s, 0x03030303;"]
        return "\n".join([*lines, "}"]), planes
    last = planes - 1
    lines = ["{", ".reg .b32 lo, hi, z, a, b, q;", "mov.b32 z, 0;", *_spread_lines(src, "lo", "hi")]
    for j in range(last):  # the word is read only above, so an output may share its register
        lines += _digit_prefix_lines(f"${j}", j)
    lines += _digit_prefix_lines("q", last)
    lines.append(f"mad.lo.u32 ${last}, ${last - 1}, {THREE_NEG:#x}, q;")
    return "\n".join([*lines, "}"]), planes


def _int8_plane_asm(layout: str, j: int) -> tuple[str, int, int]:
    """The plane-wise s8 decode's block for plane j (one output, $0, as
    :func:`_int8_decode_asm`'s $j): 2-bit: from the packed word ($1); 1.6-bit: from the spread
    state's two registers (:data:`SPREAD_ASM`; $1, $2) and, for the last plane, the previous
    plane's prefixes ``P_3`` ($3). Returns the PTX, the outputs and the inputs."""
    if layout == "2bit":
        if not j:
            return "and.b32 $0, $1, 0x03030303;", 1, 1
        lines = ["{", ".reg .b32 s;", f"shr.b32 s, $1, {2 * j};", "and.b32 $0, s, 0x03030303;"]
        return "\n".join([*lines, "}"]), 1, 1
    if j < layouts.TRITS_PER_BYTE[layout] - 1:
        lines = ["{", ".reg .b32 a, b;", *_digit_prefix_lines("$0", j, "$1", "$2"), "}"]
        return "\n".join(lines), 1, 2
    # the output written after every input is read (it may share an input's register)
    lines = ["{", ".reg .b32 a, b, q;", *_digit_prefix_lines("q", j, "$1", "$2")]
    lines.append(f"mad.lo.u32 $0, $3, {THREE_NEG:#x}, q;")
    return "\n".join([*lines, "}"]), 1, 3


def _s8_tiles_fn(asm: str, outs: int, shape: tuple[int, int]):
    """``plgpu.inline_mgpu`` function: ``asm`` (one packed word in, ``outs`` words out) on each
    register of a uint8 tile in the 8-bit WGMMA layout -> ``outs`` s8 tiles, same layout, same
    positions."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    out_type = plgpu.ShapeDtypeStruct(shape, jnp.int8, layout=plgpu.Layout.WGMMA_8BIT)

    @plgpu.inline_mgpu(arg_types=(plgpu.Layout.WGMMA_8BIT,), return_type=(out_type,) * outs)
    def tiles_of(ctx, w8):
        del ctx
        tiles = [np.empty(w8.registers.shape, dtype=object) for _ in range(outs)]
        for idx in np.ndindex(w8.registers.shape):
            for t, v in zip(tiles, _run_asm(asm, outs, _as_i32(w8.registers[idx])), strict=True):
                t[idx] = _as_i8x4(v)
        return tuple(_s8_array(t) for t in tiles)

    return tiles_of


def _int8_decode_fn(layout: str, shape: tuple[int, int]):
    """uint8 tile in the 8-bit WGMMA layout -> one s8 tile a plane (:func:`_int8_decode_asm`)."""
    return _s8_tiles_fn(*_int8_decode_asm(layout), shape)


def _int8_plane_decode_fns(layout: str, shape: tuple[int, int]):
    """``(spread, planes)`` as :func:`_plane_decode_fns`, for the s8 tiles: 2-bit's state is the
    uint8 tile itself; 1.6-bit's is :data:`SPREAD_ASM`'s bf16-typed tile (two registers a byte
    register, at :func:`bf16_register_of`) and the previous plane's s8 weights (None before
    plane 0), which the last plane reads (plane 3's digit prefixes)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu

    planes = layouts.TRITS_PER_BYTE[layout]
    if layout == "2bit":

        def plane_2bit(j: int):
            plane = _s8_tiles_fn(_int8_plane_asm(layout, j)[0], 1, shape)
            return lambda w8: (plane(w8)[0], w8)

        return (lambda w8: w8), [plane_2bit(j) for j in range(planes)]

    s8_type = plgpu.ShapeDtypeStruct(shape, jnp.int8, layout=plgpu.Layout.WGMMA_8BIT)
    from jax.experimental.mosaic.gpu import fragmented_array as fa

    byte_shape = fa.WGMMA_LAYOUT_8BIT.registers_shape(shape)

    def plane_1p6bit(j: int):
        asm, outs, ins = _int8_plane_asm(layout, j)
        arg_types = (plgpu.Layout.WGMMA,) + (plgpu.Layout.WGMMA_8BIT,) * (ins - 2)

        @plgpu.inline_mgpu(arg_types=arg_types, return_type=(s8_type,) * outs)
        def plane(ctx, spread_tile, *prefix):
            del ctx
            tiles = [np.empty(byte_shape, dtype=object) for _ in range(outs)]
            for idx in np.ndindex(byte_shape):
                words = [_as_i32(spread_tile.registers[bf16_register_of(idx, h)]) for h in (0, 1)]
                words += [_as_i32(p.registers[idx]) for p in prefix]
                for t, v in zip(tiles, _run_asm(asm, outs, *words), strict=True):
                    t[idx] = _as_i8x4(v)
            return tuple(_s8_array(t) for t in tiles)

        def run(state):
            spread_tile, prefix = state
            (weights,) = plane(spread_tile, *(() if ins == 2 else (prefix,)))
            return weights, (spread_tile, weights)  # the last plane reads P_3, plane 3's weights

        return run

    spread = _spread_fn(shape)
    return (lambda w8: (spread(w8), None)), [plane_1p6bit(j) for j in range(planes)]


def fused_int8_epilogue(cfg: MosaicConfig, n: int, scale_shape) -> bool:
    """Whether the kernel with ``cfg`` finishes its tiles itself (:func:`_int8_finish_fn`): the
    s8 MMA, one split (no partial sums to add) and one gamma a tile or a whole number of them
    (a per-column-block scale whose blocks neither hold nor divide a warpgroup's ``tile_wg``
    columns takes :func:`finish_int8` after the kernel)."""
    if not cfg.int8 or cfg.split_k != 1:
        return False
    block = n // layouts.check_scale_shape(tuple(scale_shape), n)
    return block % cfg.tile_wg == 0 or cfg.tile_wg % block == 0


def _int8_finish_fn(
    m: int,
    m_pad: int,
    tile_wg: int,
    planes: int,
    gamma_block: int,
    interleaved: bool = False,
):
    """``plgpu.inline_mgpu`` function finishing one warpgroup's s8 tile in the kernel: the
    int32 accumulator ``[tile_wg, 2 m_pad]`` (low bytes' sums, then high bytes'), x's offset
    ``[planes, m_pad]`` and scales ``[m_pad]`` (the preparation's), the gammas of the
    tile (a ref whose element ``row // gamma_block`` is row's; ``gamma_block = 0``: element 0
    for all), and the output's ``[M, tile_wg]`` columns, which it writes as
    :func:`finish_int8` would (``256 hi + (lo - offset)``, times x's scale and
    gamma, bf16), a thread its own elements. Transposing by address costs no shuffle: the
    output is ``M x tile_wg`` bf16 (4 KB a CTA at M = 16), so that the stores' poor coalescing
    weighs nothing against a launch of its own. ``interleaved`` (x prepared in the kernel,
    :func:`_x_store_fn`): the accumulator is ``[tile_wg, 2 m_pad]`` with row i's low bytes'
    sums in column ``2 i`` and its high bytes' in ``2 i + 1`` (a thread holds both: the
    ``wgmma`` layout's registers are pairs of adjacent columns), and x's offset and scale come
    as ``[m_pad, 128]`` refs whose row i starts with row i's ``sum q`` over every plane and
    its scale."""
    import jax.experimental.pallas.mosaic_gpu as plgpu
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import arith, memref

    refs = (plgpu.RefType(),) * 4

    @plgpu.inline_mgpu(arg_types=(plgpu.Layout.WGMMA, *refs))
    def finish_tile(ctx, acc, offset_ref, xscale_ref, gamma_ref, out_ref):
        from jax.experimental.mosaic.gpu import utils as mgpu_utils

        del ctx
        index, f32 = ir.IndexType.get(), ir.F32Type.get()

        def const(v: int):
            return arith.constant(index, v)

        lows, highs = [], []
        if interleaved:  # (lo, hi) of a row of x: one register's two elements, in turn
            if ir.VectorType(acc.registers.flat[0].type).shape != [2]:
                raise ValueError("x_in_kernel: expected the wgmma layout's column pairs")
            pairs: list = []
            acc.foreach(lambda v, idx: pairs.append((v, idx)))
            for (lo, (row, col)), (hi, _) in zip(pairs[::2], pairs[1::2], strict=True):
                lows.append((lo, (row, arith.divui(col, const(2)))))
                highs.append(hi)
        else:
            acc[:, :m_pad].foreach(lambda v, idx: lows.append((v, idx)))
            acc[:, m_pad:].foreach(lambda v, idx: highs.append(v))
        # every load before any store: none of them waits behind a store, and LLVM may merge
        # those of the same address (x's sums and scale a column, gamma a row)
        terms = []
        for (lo, (row, col)), hi in zip(lows, highs, strict=True):
            if interleaved:
                lo = arith.subi(lo, memref.load(offset_ref, [col, const(0)]))
                xscale = memref.load(xscale_ref, [col, const(0)])
            else:
                for j in range(planes):
                    lo = arith.subi(lo, memref.load(offset_ref, [const(j), col]))
                xscale = memref.load(xscale_ref, [col])
            g = const(0) if not gamma_block else arith.divui(row, const(gamma_block))
            factor = arith.mulf(xscale, memref.load(gamma_ref, [g]))
            terms.append((lo, hi, factor, row, col))
        for lo, hi, factor, row, col in terms:
            v = arith.addf(
                arith.mulf(arith.sitofp(f32, hi), arith.constant(f32, 256.0)),
                arith.sitofp(f32, lo),
            )
            out = arith.truncf(ir.BF16Type.get(), arith.mulf(v, factor))
            if m == m_pad:
                memref.store(out, out_ref, [col, row])
                continue
            live = arith.cmpi(arith.CmpIPredicate.ult, col, const(m))
            with mgpu_utils.when(live):
                memref.store(out, out_ref, [col, row])

    return finish_tile


# ----------------------------------------------------------------------------------------------
# x prepared in the kernel (MosaicConfig.x_in_kernel)

X_IN_KERNEL_MAX_M = 4
"""Largest M for ``MosaicConfig.x_in_kernel``: x's tiles hold M rows of low bytes and M of high
bytes in 8 (the s8 ``wgmma``'s smallest N; ``2 X_IN_KERNEL_HALF``)."""
X_IN_KERNEL_HALF = 4
"""With ``x_in_kernel`` x's tiles have ``2 X_IN_KERNEL_HALF`` rows, row ``2 i`` row i's low
bytes and ``2 i + 1`` its high ones (the other paths pad M to 8 and so take 16 rows)."""
SMEM_BYTES_PER_CTA = 227 * 1024
"""The most dynamic shared memory a Hopper CTA may have."""


def x_in_kernel_smem_bytes(cfg: MosaicConfig, layout: str, m: int, k: int) -> int:
    """Shared memory of a CTA with ``x_in_kernel``: x's s8 tiles for every step, the rows'
    scales and sums, and the weights' pipeline stages (x itself stays in registers). M does
    not change it (x's tiles have 8 rows for any M up to ``X_IN_KERNEL_MAX_M``)."""
    del m
    rows = layouts.rows_per_plane(k, layout)
    planes = layouts.TRITS_PER_BYTE[layout]
    steps = rows // cfg.block_k
    weights = min(cfg.stages, steps) * cfg.tile_n * cfg.block_k
    x_tiles = steps * planes * 2 * X_IN_KERNEL_HALF * cfg.block_k
    return weights + x_tiles + 2 * X_IN_KERNEL_HALF * 512


def x_in_kernel_ok(cfg: MosaicConfig, layout: str, m: int, k: int, n: int, scale_shape) -> bool:
    """Whether ``cfg.x_in_kernel`` can run this point: the s8 MMA with its own epilogue
    (:func:`fused_int8_epilogue`), 128 packed rows a step, one warpgroup, ``in_flight`` 0, M up to
    ``X_IN_KERNEL_MAX_M``, x loadable to registers as the prologue wants
    (:func:`x_load_plan`) and a CTA's shared memory (:func:`x_in_kernel_smem_bytes`) within
    ``SMEM_BYTES_PER_CTA``."""
    return (
        cfg.int8
        and cfg.block_k == 128
        and cfg.compute_wgs == 1
        and not cfg.in_flight
        and m <= X_IN_KERNEL_MAX_M
        and x_load_plan(layout, k, layouts.rows_per_plane(k, layout)) is not None
        and fused_int8_epilogue(cfg, n, scale_shape)
        and x_in_kernel_smem_bytes(cfg, layout, m, k) <= SMEM_BYTES_PER_CTA
    )


def x_load_plan(layout: str, k: int, rows: int) -> tuple[int, int] | None:
    """How ``x_in_kernel``'s prologue loads a row of x (``[K]`` bf16) to registers, as
    ``(vec, shifted)``, or None where it cannot: the whole row in ``WG_STRIDED`` vectors of
    ``vec`` elements (so that a vector lies in one plane and one step: ``vec`` divides R), and,
    for the folded planes (:data:`FOLDED_PLANES`, ``q_j - 3 q_(j+1)``), the ``shifted``
    columns from R on in the same layout, so that the thread holding column c holds column
    ``c + R`` too, at the same register (``shifted`` covers the folded planes' columns,
    rounded up to ``128 vec``, within K; 0 for 2-bit). None where the folded planes' partners
    run past K (``(folded + 1) R > K``) or R is not a multiple of 128."""
    folded = FOLDED_PLANES[layout]
    if rows % 128 or (folded + 1) * rows > k:
        return None
    for vec in (8, 4, 2, 1):
        width = 128 * vec
        shifted = -(-folded * rows // width) * width if folded else 0
        if k % width == 0 and rows % vec == 0 and rows + shifted <= k:
            return vec, shifted
    return None


def _x_prologue(
    x_gmem, xq, xs, qs, layout: str, m: int, m_pad: int, rows: int, plan: tuple[int, int], store
) -> None:
    """Each CTA's x with ``x_in_kernel``, in registers (``plan``, :func:`x_load_plan`): every
    row of x (``[M, K]`` bf16 in global memory) and its columns from R on (1.6-bit) loaded, all
    issued before the first reduction waits; each row's scale (``max |x| / INT8_X_MAX``, 1 for a
    zero row) into ``xs[i]`` and its ``sum q`` (int32, exact) into ``qs[i]``, as
    :func:`int8_operands` computes them; ``q`` of both loads to ``store``
    (:func:`_x_store_fn`), which writes x's s8 tiles ``xq``. Padding rows get scale 1 and sum
    0. Nothing of x goes through shared memory but its tiles."""
    import jax.experimental.pallas as pl
    import jax.experimental.pallas.mosaic_gpu as plgpu

    from kernels_pallas.triton_dp2a import rounded_int

    vec, shifted = plan
    whole = plgpu.Layout.WG_STRIDED((x_gmem.shape[1],), vec)
    loads = []
    for i in range(m):
        row = [plgpu.load(x_gmem.at[i], (), layout=whole)]
        if shifted:
            partners = plgpu.Layout.WG_STRIDED((shifted,), vec)
            row.append(plgpu.load(x_gmem.at[i, pl.ds(rows, shifted)], (), layout=partners))
        loads.append(row)
    q_rows = []
    for i, row in enumerate(loads):
        xf = row[0].astype(jnp.float32)
        amax = jnp.max(jnp.abs(xf))
        scale = jnp.where(amax > 0, amax / INT8_X_MAX[layout], 1.0)
        inv = 1.0 / scale
        q = rounded_int(xf * inv)  # as the preparation kernel rounds; the same for both loads
        xs[i] = jnp.full((128,), scale, jnp.float32)
        qs[i] = jnp.full((128,), jnp.sum(q), jnp.int32)
        q_rows.append((q, *(rounded_int(v.astype(jnp.float32) * inv) for v in row[1:])))
    for i in range(m, m_pad):
        xs[i] = jnp.ones((128,), jnp.float32)
        qs[i] = jnp.zeros((128,), jnp.int32)
    store(xq, tuple(q_rows))


def _swizzled_col(row, col):
    """The byte column of ``(row, col)`` in a 128-byte-swizzled tile of 128-byte rows (MLIR i32
    values): its 16-byte chunk XOR the row's index within its group of 8."""
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import arith

    i32 = ir.IntegerType.get_signless(32)
    chunk = arith.shrui(col, arith.constant(i32, 4))
    chunk = arith.xori(chunk, arith.andi(row, arith.constant(i32, 7)))
    return arith.addi(
        arith.shli(chunk, arith.constant(i32, 4)), arith.andi(col, arith.constant(i32, 15))
    )


def _x_store_fn(layout: str, m: int, k: int, rows: int, bk: int, plan: tuple[int, int], transforms):
    """``plgpu.inline_mgpu`` function writing x's s8 tiles for every step of the s8 ``wgmma``s
    from the quantized rows in registers, once a CTA: ``store(xq, q)``, ``q[i]`` row i's
    ``q`` (int32 ``[K]``) and, 1.6-bit, ``q`` of its columns from R on (both in
    ``plan``'s layout, :func:`x_load_plan`), ``xq`` the ``[steps planes, 8, bk]`` s8 tiles (step s's
    planes at ``s planes``, 128-byte swizzle). A thread's register u holds ``vec`` columns from
    ``c = (128 u + t) vec``: plane ``c div R``, packed row ``c mod R`` (step and column in the
    tile); as :func:`int8_operands`, a folded plane takes ``q_j - 3 q_(j+1)`` (``q_(j+1)``: the
    shifted load's register u), split into the low byte (row ``2 i``) and the high one
    (``2 i + 1``), ``vec`` bytes one store. The planes' rows past K (``planes R - K``) get
    zeros. Rows ``2 M`` to 7 are not written: their products land in the accumulator's
    columns past x's rows, which the epilogue does not read (int32 sums, so whatever the
    bytes, nothing but those columns changes). Ends with the writes made visible to the
    ``wgmma``s (``commit_smem``)."""
    import jax.experimental.pallas.mosaic_gpu as plgpu
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import arith, vector

    planes, folded = layouts.TRITS_PER_BYTE[layout], FOLDED_PLANES[layout]
    if bk != 128:
        raise ValueError(f"x_in_kernel: block_k must be 128 (one swizzled row a plane), not {bk}")
    vec, shifted = plan
    q_types = tuple(plgpu.Layout.WG_STRIDED((n,), vec) for n in (k, shifted) if n)
    tail = planes * rows - k

    @plgpu.inline_mgpu(arg_types=(plgpu.RefType(transforms=transforms), (q_types,) * m))
    def store(ctx, xq, q):
        from jax.experimental.mosaic.gpu import utils as mgpu_utils

        del ctx
        i32, i8, index = (
            ir.IntegerType.get_signless(32),
            ir.IntegerType.get_signless(8),
            ir.IndexType.get(),
        )
        ci = lambda v: arith.constant(i32, v)  # noqa: E731
        t = mgpu_utils.thread_idx()

        def put(i: int, column, lo, hi):
            """Bytes ``lo, hi`` (i8 vectors) of x row i at ``column`` (i32) of the planes."""
            plane, r = arith.divui(column, ci(rows)), arith.remui(column, ci(rows))
            p = arith.addi(arith.muli(arith.divui(r, ci(bk)), ci(planes)), plane)
            col = arith.remui(r, ci(bk))
            for row, value in ((2 * i, lo), (2 * i + 1, hi)):
                at = [p, ci(row // 8), ci(0), ci(row % 8), _swizzled_col(ci(row), col)]
                vector.store(value, xq, [arith.index_cast(index, a) for a in at])

        vt, v8 = ir.VectorType.get((vec,), i32), ir.VectorType.get((vec,), i8)
        splat = lambda v: vector.broadcast(vt, ci(v))  # noqa: E731
        for i, row_q in enumerate(q):
            main = row_q[0].registers
            for u in range(main.shape[0]):
                column = arith.muli(arith.addi(t, ci(128 * u)), ci(vec))
                v = main[u]
                if folded and u < row_q[1].registers.shape[0]:
                    fold = arith.cmpi(arith.CmpIPredicate.ult, column, ci(folded * rows))
                    partner = arith.muli(splat(3), row_q[1].registers[u])
                    v = arith.select(fold, arith.subi(v, partner), v)
                hi = arith.shrsi(arith.addi(v, splat(128)), splat(8))
                lo = arith.subi(v, arith.shli(hi, splat(8)))
                put(i, column, arith.trunci(v8, lo), arith.trunci(v8, hi))
            zero = vector.broadcast(ir.VectorType.get((1,), i8), arith.constant(i8, 0))
            for w in range(tail // 128):  # R and K are multiples of 128 (x_load_plan)
                put(i, arith.addi(t, ci(k + 128 * w)), zero, zero)
        mgpu_utils.commit_shared()

    return store


# ----------------------------------------------------------------------------------------------
# The kernel


def _swizzle_transforms(row_bytes: int, itemsize: int):
    import jax.experimental.pallas.mosaic_gpu as plgpu

    swizzle = plgpu.find_swizzle(row_bytes * 8, "tile")
    return (
        plgpu.TilingTransform((8, swizzle // itemsize)),
        plgpu.SwizzleTransform(swizzle),
    )


@functools.partial(jax.jit, static_argnames=("layout", "config", "fuse_epilogue"))
def mosaic_ternary_matmul(
    x: jax.Array,
    packed_t: jax.Array,
    scale: jax.Array,
    layout: str = "2bit",
    config: MosaicConfig = MosaicConfig(),
    fuse_epilogue: bool = True,
) -> jax.Array:
    """``x @ (scale * T)`` for bf16 ``x [M, K]`` and ``packed_t = packed.T`` (``[N, R]``, the
    layouts of ``layouts.py`` transposed); M <= 256, ``config`` must tile N and R.

    The s8 kernel writes the product itself where :func:`fused_int8_epilogue` allows (one
    split); ``fuse_epilogue=False`` takes the separate epilogue there too (for comparisons)."""
    import jax.experimental.pallas as pl
    import jax.experimental.pallas.mosaic_gpu as plgpu

    layouts.check_layout(layout)
    if x.ndim != 2 or packed_t.ndim != 2:
        raise ValueError(
            f"mosaic_ternary_matmul: x [M, K] and packed_t [N, R] must be 2-D, got shapes "
            f"{x.shape} and {packed_t.shape}"
        )
    if x.dtype != jnp.bfloat16 or packed_t.dtype != jnp.uint8:
        raise ValueError(
            f"mosaic_ternary_matmul: x must be bfloat16 and packed_t uint8, got {x.dtype} and "
            f"{packed_t.dtype}"
        )
    m, k = x.shape
    n, rows = packed_t.shape
    if (rows, n) != layouts.packed_shape(k, n, layout):
        raise ValueError(
            f"mosaic_ternary_matmul: packed_t {packed_t.shape} does not fit x {x.shape} in the "
            f"{layout} layout: expected {layouts.packed_shape(k, n, layout)[::-1]}"
        )
    cfg = config
    tile_n, bk = cfg.tile_n, cfg.block_k
    steps = rows // bk
    wgs = cfg.compute_wgs
    if n % tile_n or tile_n % (WGMMA_M * wgs) or rows % bk or bk not in (32, 64, 128):
        raise ValueError(
            f"{cfg}: tile_n must divide N={n} (64 per compute warpgroup), block_k R={rows}"
        )
    if wgs not in (1, 2):
        raise ValueError(f"{cfg}: compute_wgs must be 1 or 2")
    if not 1 <= m <= 256:
        raise ValueError(f"mosaic_ternary_matmul: M={m} must be in [1, 256]")
    split = cfg.split_k
    if split < 1 or steps % split:
        raise ValueError(f"{cfg}: split_k must divide the {steps} steps (R={rows} / block_k)")
    per_split = steps // split
    planes = layouts.TRITS_PER_BYTE[layout]
    in_flight = cfg.in_flight
    if not 0 <= in_flight < planes or (in_flight and cfg.stages < 2):
        raise ValueError(
            f"{cfg}: in_flight must be in [0, {planes - 1}] (fewer than the planes a step) and "
            "needs stages >= 2"
        )
    if cfg.int8 and bk == 32:
        raise ValueError(f"{cfg}: int8 needs block_k 64 or 128 (no s8 register operand at 32)")
    m_pad = padded_m(m)
    tile_wg = cfg.tile_wg
    fused = fuse_epilogue and fused_int8_epilogue(cfg, n, jnp.shape(scale))
    x_in_kernel = cfg.x_in_kernel
    if x_in_kernel and not (
        fuse_epilogue and x_in_kernel_ok(cfg, layout, m, k, n, jnp.shape(scale))
    ):
        raise ValueError(
            f"{cfg}: x_in_kernel needs int8, 128 packed rows a step, one split, one warpgroup, "
            f"in_flight 0, the fused epilogue, M <= {X_IN_KERNEL_MAX_M} and at most "
            f"{SMEM_BYTES_PER_CTA} bytes of shared memory a CTA (got M={m}, K={k}: "
            f"{x_in_kernel_smem_bytes(cfg, layout, m, k)} bytes)"
        )
    if cfg.int8:
        if not x_in_kernel:  # else each CTA prepares x (kernel_x below)
            from kernels_pallas.int8_prep import int8_operands_pallas

            xk, xscale, offset = int8_operands_pallas(x, layout, rows, m_pad)
        x_rows, x_itemsize, acc_dtype = 2 * m_pad, 1, jnp.int32
        decode = _int8_decode_fn(layout, (tile_wg, bk))
        spread, plane_decoders = _int8_plane_decode_fns(layout, (tile_wg, bk))
    else:
        xk, offset = mosaic_operands(x, layout, rows, m_pad)
        x_rows, x_itemsize, acc_dtype = m_pad, 2, jnp.float32
        decode = _decode_fn(layout, (tile_wg, bk))
        spread, plane_decoders = _plane_decode_fns(layout, (tile_wg, bk))
    # x's tiles stay in use while a step's last wgmmas run on (in_flight); the packed bytes are
    # in registers by then, but the warp-specialized pipeline wants one delay for all inputs.
    x_delay = 1 if in_flight else 0
    w_delay = x_delay if wgs > 1 else 0
    w_spec = plgpu.BlockSpec(
        (tile_n, bk),
        lambda s: (0, s),
        transforms=_swizzle_transforms(bk, 1),
        delay_release=w_delay,
    )
    x_spec = plgpu.BlockSpec(  # all planes' x tiles of a step in one TMA copy
        (planes, x_rows, bk),
        lambda s: (0, 0, s),
        transforms=_swizzle_transforms(x_itemsize * bk, x_itemsize),
        delay_release=x_delay,
    )

    def operands(x_gmem, w_gmem):
        """The CTA's packed columns and K-range, and x's columns there (every plane)."""
        r0 = lax.axis_index("s") * per_split * bk
        width = per_split * bk
        cols = pl.ds(lax.axis_index("n") * tile_n, tile_n)
        return w_gmem.at[cols, pl.ds(r0, width)], x_gmem.at[:, :, pl.ds(r0, width)]

    def mma_step(w_smem, x_smem, acc_ref):
        """One step of a compute warpgroup: decode its packed rows, one wgmma a plane, wait
        (in_flight 0: for all of them after the step; else after each plane, for all but the
        last ``in_flight``)."""
        w8 = plgpu.load(w_smem, (), layout=plgpu.Layout.WGMMA_8BIT)
        if not in_flight:
            for j, wj in enumerate(decode(w8)):
                plgpu.wgmma(acc_ref, wj, x_smem.at[j].T)
            plgpu.wgmma_wait(0)
            return
        state = spread(w8)
        for j, plane in enumerate(plane_decoders):
            wj, state = plane(state)
            plgpu.wgmma(acc_ref, wj, x_smem.at[j].T)
            plgpu.wgmma_wait(in_flight)

    if fused:
        gamma = jnp.asarray(scale, jnp.float32).reshape(-1)
        gamma_block = n // gamma.shape[0]
        per_tile = gamma_block % tile_wg == 0
        finish_tile = _int8_finish_fn(  # x_in_kernel: x's tiles have interleaved rows
            m,
            X_IN_KERNEL_HALF if x_in_kernel else m_pad,
            tile_wg,
            planes,
            0 if per_tile else gamma_block,
            interleaved=x_in_kernel,
        )

    def unpack(refs):
        """The kernel's refs: x, the packed bytes, the output, the fused epilogue's operands
        (x's plane sums, x's scales, the gammas) and the partial sums' staging buffer."""
        if fused:
            x_gmem, w_gmem, off_gmem, xs_gmem, g_gmem, o_gmem = refs
            return x_gmem, w_gmem, o_gmem, (off_gmem, xs_gmem, g_gmem), None
        x_gmem, w_gmem, o_gmem, o_smem = refs
        return x_gmem, w_gmem, o_gmem, (), o_smem

    def store(acc_ref, o_smem, o_gmem, wg, epilogue_refs):
        """Warpgroup ``wg``'s accumulator to its columns of the product (fused) or of the CTA's
        split-K partial sums (staged in ``o_smem[wg]``)."""
        plgpu.wgmma_wait(0)
        n0 = lax.axis_index("n") * tile_n + wg * tile_wg
        if fused:
            off_gmem, xs_gmem, g_gmem = epilogue_refs
            width = 1 if per_tile else tile_wg // gamma_block
            gammas = g_gmem.at[pl.ds(n0 // gamma_block, width)]
            finish_tile(acc_ref[...], off_gmem, xs_gmem, gammas, o_gmem.at[:, pl.ds(n0, tile_wg)])
            return
        staged = o_smem.at[wg]
        staged[...] = acc_ref[...]
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(staged, o_gmem.at[lax.axis_index("s"), pl.ds(n0, tile_wg)])
        plgpu.wait_smem_to_gmem(0)

    in_specs = [w_spec, x_spec]

    def kernel(*refs):
        x_gmem, w_gmem, o_gmem, epilogue_refs, o_smem = unpack(refs)

        def acc_scope(acc_ref):
            def body(_, w_smem, x_smem):
                mma_step(w_smem, x_smem, acc_ref)

            plgpu.emit_pipeline(
                body, grid=(per_split,), in_specs=in_specs, max_concurrent_steps=cfg.stages
            )(*operands(x_gmem, w_gmem))
            store(acc_ref, o_smem, o_gmem, 0, epilogue_refs)

        pl.run_scoped(acc_scope, plgpu.ACC((tile_wg, x_rows), acc_dtype))

    def kernel_ws(*refs):
        x_gmem, w_gmem, o_gmem, epilogue_refs, o_smem = unpack(refs)
        wg = lax.axis_index("wg")

        def compute_context(eval_pipeline):
            def acc_scope(acc_ref):
                eval_pipeline(acc_ref)
                store(acc_ref, o_smem, o_gmem, wg, epilogue_refs)

            pl.run_scoped(acc_scope, plgpu.ACC((tile_wg, x_rows), acc_dtype))

        def body(_, w_smem, x_smem, acc_ref):
            mma_step(w_smem.at[pl.ds(wg * tile_wg, tile_wg)], x_smem, acc_ref)
            return acc_ref

        plgpu.emit_pipeline_warp_specialized(
            body,
            grid=(per_split,),
            memory_registers=40,
            in_specs=in_specs,
            wg_axis="wg",
            num_compute_wgs=wgs,
            max_concurrent_steps=cfg.stages,
            compute_context=compute_context,
        )(*operands(x_gmem, w_gmem))

    if x_in_kernel:
        half = X_IN_KERNEL_HALF
        x_tile = _swizzle_transforms(bk, 1)
        stages = min(cfg.stages, steps)
        plan = x_load_plan(layout, k, rows)  # not None: x_in_kernel_ok above
        store_x = _x_store_fn(layout, m, k, rows, bk, plan, x_tile)

        def kernel_x(x_gmem, w_gmem, g_gmem, o_gmem, xq, xs, qs, w_stages, arrived):
            """x prepared in the kernel, under the first copies: the first ``stages`` steps'
            packed bytes are requested, then x is prepared (:func:`_x_prologue`: its rows'
            scales and sums, and the s8 tiles of every step, ``xq``, from registers), then the
            pipeline runs over the packed bytes alone, a step's stage refilled once its
            ``wgmma``s are done (as ``emit_pipeline`` does, by hand so that the prologue runs
            while the first copies are in flight)."""
            cols = pl.ds(lax.axis_index("n") * tile_n, tile_n)

            def fetch(step, slot):
                plgpu.copy_gmem_to_smem(
                    w_gmem.at[cols, pl.ds(step * bk, bk)], w_stages.at[slot], arrived.at[slot]
                )

            for s in range(stages):
                fetch(s, s)
            _x_prologue(x_gmem, xq, xs, qs, layout, m, half, rows, plan, store_x)

            def acc_scope(acc_ref):
                def step_fn(step, carry):
                    slot = lax.rem(step, stages)
                    plgpu.barrier_wait(arrived.at[slot])
                    mma_step(w_stages.at[slot], xq.at[pl.ds(step * planes, planes)], acc_ref)

                    @pl.when(step + stages < steps)
                    def _refill():
                        fetch(step + stages, slot)

                    return carry

                lax.fori_loop(0, steps, step_fn, None)
                store(acc_ref, None, o_gmem, 0, (qs, xs, g_gmem))

            pl.run_scoped(acc_scope, plgpu.ACC((tile_wg, 2 * half), acc_dtype))

        return plgpu.kernel(
            kernel_x,
            out_type=jax.ShapeDtypeStruct((m, n), x.dtype),
            grid=(n // tile_n,),
            grid_names=("n",),
            scratch_types=[
                plgpu.SMEM((steps * planes, 2 * half, bk), jnp.int8, transforms=x_tile),
                plgpu.SMEM((half, 128), jnp.float32),
                plgpu.SMEM((half, 128), jnp.int32),
                plgpu.SMEM((stages, tile_n, bk), jnp.uint8, transforms=w_spec.transforms),
                plgpu.Barrier(num_arrivals=1, num_barriers=stages),
            ],
        )(x, packed_t, gamma)

    threads = dict(num_threads=wgs + 1, thread_name="wg") if wgs > 1 else {}
    launch = functools.partial(
        plgpu.kernel,
        kernel_ws if wgs > 1 else kernel,
        grid=(n // tile_n, split),
        grid_names=("n", "s"),
        **threads,
    )
    if fused:
        out_type = jax.ShapeDtypeStruct((m, n), x.dtype)
        return launch(out_type=out_type)(xk, packed_t, offset, xscale, gamma)
    partials = launch(
        out_type=jax.ShapeDtypeStruct((split, n, x_rows), acc_dtype),
        scratch_types=[plgpu.SMEM((wgs, tile_wg, x_rows), acc_dtype)],
    )(xk, packed_t)
    if cfg.int8:
        return finish_int8(partials, offset, xscale, scale, m, x.dtype)
    return finish(partials, offset, scale, m, x.dtype)

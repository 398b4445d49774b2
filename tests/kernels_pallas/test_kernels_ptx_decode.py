"""The inline PTX that decodes packed bytes on the GPU, run through a tiny emulator on the CPU
(the MMA kernel's bf16 trits, the CUDA-core kernel's magic-float FMAs, the integer kernel's
transpose and dp2a, the int8-MMA probe's weight bytes).

The GPU kernel's asm cannot run in Pallas interpret mode, so this checks its arithmetic here: every
byte value in every position of the 4-byte register, against the layout's numpy unpacking.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas import layouts
from kernels_pallas.triton_dp2a import DP2A_ASM_PLANES
from kernels_pallas.triton_gemv import GEMV_ASM_PLANES, magic_floats, plane_delta
from kernels_pallas.triton_matmul import ASM_PLANES, RAW_ASM_PLANES, plane_affine

MASK32 = np.uint64(0xFFFFFFFF)


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bf16 bits (the results here are exact anyway)."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))
    return (b >> np.uint64(16)).astype(np.uint32)


def _prmt(a: np.ndarray, b: np.ndarray, sel: int) -> np.ndarray:
    src = (b.astype(np.uint64) << np.uint64(32)) | a.astype(np.uint64)
    out = np.zeros_like(a, dtype=np.uint64)
    for i in range(4):
        idx = (sel >> (4 * i)) & 0x7
        byte = (src >> np.uint64(8 * idx)) & np.uint64(0xFF)
        out |= byte << np.uint64(8 * i)
    return out.astype(np.uint32)


def _lop3(a, b, c, lut: int) -> np.ndarray:
    out = np.zeros_like(a)
    for bit in range(8):
        if lut >> bit & 1:
            ta = a if bit & 4 else ~a
            tb = b if bit & 2 else ~b
            tc = c if bit & 1 else ~c
            out |= ta & tb & tc
    return out


def _fma_bf16x2(a, b, c) -> np.ndarray:
    out = np.zeros_like(a)
    for half in (0, 16):
        sh = np.uint32(half)
        lane = [_bf16_to_f32((v >> sh) & np.uint32(0xFFFF)).astype(np.float64) for v in (a, b, c)]
        out |= _f32_to_bf16((lane[0] * lane[1] + lane[2]).astype(np.float32)) << sh
    return out


def run_ptx(asm: str, operands: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the handful of b32 instructions the decode blocks use, element-wise."""
    regs = dict(operands)
    shape = next(iter(operands.values())).shape

    def val(tok: str) -> np.ndarray:
        tok = tok.strip()
        if tok in regs:
            return regs[tok]
        return np.full(shape, int(tok, 0) & 0xFFFFFFFF, dtype=np.uint32)

    for line in asm.splitlines():
        line = line.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        args = [t.strip() for t in rest.split(",")]
        dst, src = args[0], [val(t) for t in args[1:]]
        if op == "mov.b32":
            res = src[0]
        elif op == "prmt.b32":
            res = _prmt(src[0], src[1], int(args[3], 0))
        elif op == "lop3.b32":
            res = _lop3(src[0], src[1], src[2], int(args[4], 0))
        elif op == "shr.b32":
            res = src[0] >> src[1]
        elif op == "and.b32":
            res = src[0] & src[1]
        elif op == "xor.b32":
            res = src[0] ^ src[1]
        elif op == "mul.lo.u32":
            res = ((src[0].astype(np.uint64) * src[1].astype(np.uint64)) & MASK32).astype(np.uint32)
        elif op == "mad.lo.u32":
            a, b, c = (v.astype(np.uint64) for v in src)
            res = ((a * b + c) & MASK32).astype(np.uint32)
        elif op == "fma.rn.bf16x2":
            res = _fma_bf16x2(*src)
        elif op in ("dp2a.lo.s32.u32", "dp2a.hi.s32.u32"):
            a, b, c = (v.astype(np.uint32) for v in src)
            first = 0 if op.startswith("dp2a.lo") else 2
            acc = c.view(np.int32).astype(np.int64)
            for i in range(2):
                half = ((a >> np.uint32(16 * i)) & np.uint32(0xFFFF)).astype(np.uint16)
                byte = (b >> np.uint32(8 * (first + i))) & np.uint32(0xFF)
                acc = acc + half.view(np.int16).astype(np.int64) * byte.astype(np.int64)
            res = (acc & 0xFFFFFFFF).astype(np.uint32)  # wraps like the hardware
        elif op == "fma.rn.f32":
            a, b, c = (v.astype(np.uint32).view(np.float32).astype(np.float64) for v in src)
            res = (a * b + c).astype(np.float32).view(np.uint32)  # exact here: a * b fits
        else:
            raise AssertionError(f"emulator does not know {op!r}")
        regs[dst] = res.astype(np.uint32)
    return regs


def _words_with_every_byte_at(layout: str, position: int, seed: int):
    """Every valid byte at ``position`` of a word, random valid bytes elsewhere: the bytes
    ``[n, 4]`` and the packed register ``[n]``."""
    valid = _all_bytes(layout)
    words = np.random.default_rng(seed).choice(valid, size=(valid.size, 4)).astype(np.uint32)
    words[:, position] = valid
    reg = words[:, 0] | words[:, 1] << 8 | words[:, 2] << 16 | words[:, 3] << 24
    return words.astype(np.uint8), reg.astype(np.uint32)


def _bf16_results(asm: str, reg: np.ndarray) -> np.ndarray:
    """A decode block's 4 bf16 results (registers $0, $1) as float32 ``[n, 4]``."""
    out = run_ptx(asm, {"$2": reg})
    lanes = [out["$0"] & 0xFFFF, out["$0"] >> 16, out["$1"] & 0xFFFF, out["$1"] >> 16]
    return _bf16_to_f32(np.stack(lanes, axis=1).astype(np.uint32))


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_ptx_decode_matches_layout(layout: str, position: int) -> None:
    words, reg = _words_with_every_byte_at(layout, position, seed=position)
    for j, asm in enumerate(ASM_PLANES[layout]):
        want = _plane_trits(words, layout, j)
        np.testing.assert_array_equal(_bf16_results(asm, reg), want.astype(np.float32))


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_raw_ptx_codes_map_affinely_to_trits(layout: str, position: int) -> None:
    """The raw-code blocks (no FMA): plane j's bf16 code v gives the trit as a_j v + b_j."""
    words, reg = _words_with_every_byte_at(layout, position, seed=10 + position)
    a, b = plane_affine(layout)
    for j, asm in enumerate(RAW_ASM_PLANES[layout]):
        v = _bf16_results(asm, reg).astype(np.float64)
        want = _plane_trits(words, layout, j)
        np.testing.assert_array_equal(a[j] * v + b[j], want.astype(np.float64))


def _all_bytes(layout: str) -> np.ndarray:
    """Every byte value that the layout can hold."""
    planes = layouts.TRITS_PER_BYTE[layout]
    trits = np.array(np.meshgrid(*[[-1, 0, 1]] * planes, indexing="ij")).reshape(planes, -1)
    if layout == "2bit":
        return layouts.pack_2bit(trits.astype(np.int8)).ravel()
    rows = layouts.ROW_ALIGN_1P6BIT
    full = np.zeros((5 * rows, trits.shape[1]), np.int8)
    full[::rows] = trits  # plane j of packed row 0 is K-row j * rows
    return layouts.pack_1p6bit(full)[0]


def _plane_trits(byte: np.ndarray, layout: str, j: int) -> np.ndarray:
    """Trit of plane j of each byte, by unpacking a one-row packed array."""
    flat = byte.reshape(1, -1)
    if layout == "2bit":
        return layouts.unpack_2bit(flat)[j].reshape(byte.shape)
    rows = layouts.ROW_ALIGN_1P6BIT
    packed = np.tile(flat, (rows, 1))
    return layouts.unpack_1p6bit(packed, 5 * rows)[j * rows].reshape(byte.shape)


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_gemv_ptx_accumulates_magic_floats_times_x(layout: str, position: int) -> None:
    """The CUDA-core kernel's asm: acc + 2**23 * (1 + c * delta_j) * x for every byte value."""
    valid = _all_bytes(layout)
    rng = np.random.default_rng(10 + position)
    words = rng.choice(valid, size=(valid.size, 4)).astype(np.uint32)
    words[:, position] = valid
    reg = words[:, 0] | words[:, 1] << 8 | words[:, 2] << 16 | words[:, 3] << 24
    xs = rng.integers(-64, 64, (4, valid.size)).astype(np.float32) * np.float32(2.0**-20)
    accs = rng.integers(-1000, 1000, (4, valid.size)).astype(np.float32)
    for j, asm in enumerate(GEMV_ASM_PLANES[layout]):
        operands = {"$4": reg.astype(np.uint32)}
        for i in range(4):
            operands[f"${5 + i}"] = xs[i].view(np.uint32)
            operands[f"${9 + i}"] = accs[i].view(np.uint32)
        out = run_ptx(asm, operands)
        got = np.stack([out[f"${i}"].view(np.float32) for i in range(4)], axis=1)
        codes = _plane_trits(words.astype(np.uint8), layout, j).astype(np.float64) + 1
        magic = 2.0**23 * (1.0 + codes * plane_delta(layout, j))
        np.testing.assert_array_equal(magic_floats(jnp.asarray(words, jnp.uint8), layout, j), magic)
        want = accs.T.astype(np.float64) + magic * xs.T  # exact: small integers times 2**-20
        np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_dp2a_ptx_transposes_and_sums_codes_times_x(layout: str, position: int) -> None:
    """The integer kernel's asm: 4 registers of 4 packed rows x 4 columns in, each column's sum
    over the 4 rows of weight * x added to its accumulator (2-bit: plane j's code; 1.6-bit:
    m_j = q * 3**j mod 256), for every byte value in every position of every row's register."""
    valid = _all_bytes(layout)
    rng = np.random.default_rng(20 + position)
    size = valid.size
    words = rng.choice(valid, size=(4, size, 4)).astype(np.uint32)  # [row q, case, column]
    words[:, :, position] = valid[rng.permutation(size)]
    regs = [w[:, 0] | w[:, 1] << 8 | w[:, 2] << 16 | w[:, 3] << 24 for w in words]
    xq = rng.integers(-32767, 32768, (size, 4)).astype(np.int64)  # x of rows 0..3
    x16 = (xq & 0xFFFF).astype(np.uint32)
    x_lo, x_hi = x16[:, 0] | x16[:, 1] << 16, x16[:, 2] | x16[:, 3] << 16
    accs = rng.integers(-(2**20), 2**20, (4, size)).astype(np.int32)
    for j, asm in enumerate(DP2A_ASM_PLANES[layout]):
        operands = {f"${4 + q}": regs[q].astype(np.uint32) for q in range(4)}
        for c in range(4):
            operands[f"${8 + c}"] = x_lo
            operands[f"${12 + c}"] = x_hi
            operands[f"${16 + c}"] = accs[c].view(np.uint32)
        out = run_ptx(asm, operands)
        q = words.astype(np.int64)  # [row, case, column]
        weight = (q >> (2 * j)) & 3 if layout == "2bit" else (q * 3**j) % 256
        for c in range(4):
            want = accs[c].astype(np.int64) + np.einsum("qk,kq->k", weight[:, :, c], xq)
            np.testing.assert_array_equal(out[f"${c}"].view(np.int32), want)


def test_1p6bit_digits_from_the_bytes_identity() -> None:
    """256 d_j = 3 m_j - m_{j+1} for every byte and digit: what lets the integer kernel multiply
    bytes instead of extracting digits (triton_dp2a.WEIGHT_PLANES)."""
    q = _all_bytes("1.6bit").astype(np.int64)
    m = [(q * 3**j) % 256 for j in range(6)]
    for j in range(5):
        digits = _plane_trits(q.astype(np.uint8), "1.6bit", j).astype(np.int64) + 1
        np.testing.assert_array_equal(256 * digits, 3 * m[j] - m[j + 1])


def _imma_probe():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "imma_probe.py"
    spec = importlib.util.spec_from_file_location("bench_imma_probe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_imma_probe_ptx_weight_bytes(layout: str) -> None:
    """benchmarks/imma_probe.py's asm: 4 packed bytes -> plane j's signed weight bytes (2-bit:
    the code t + 1; 1.6-bit: (q * 3**j mod 256) - 128), for every byte in every position, equal
    to its jnp version and to the layout's own unpacking."""
    probe = _imma_probe()
    valid = _all_bytes(layout)
    rng = np.random.default_rng(30)
    words = np.stack([np.roll(valid, p) for p in range(4)], axis=1).astype(np.uint32)
    words[:, 1] = rng.permutation(words[:, 1])
    reg = words[:, 0] | words[:, 1] << 8 | words[:, 2] << 16 | words[:, 3] << 24
    for j, asm in enumerate(probe.IMMA_ASM_PLANES[layout]):
        out = run_ptx(asm, {"$1": reg.astype(np.uint32)})["$0"]
        got = np.stack([(out >> np.uint32(8 * i)) & np.uint32(0xFF) for i in range(4)], axis=1)
        got = got.astype(np.uint8).view(np.int8).astype(np.int64)
        q = words.astype(np.int64)
        if layout == "2bit":
            want = _plane_trits(words.astype(np.uint8), layout, j).astype(np.int64) + 1
        else:
            want = (q * 3**j) % 256 - 128
        np.testing.assert_array_equal(got, want)
        jnp_bytes = probe.weight_bytes_jnp(jnp.asarray(words, jnp.uint8), layout, j)
        np.testing.assert_array_equal(np.asarray(jnp_bytes, np.int64), want)


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_mosaic_ptx_gives_every_planes_raw_codes(layout: str, position: int) -> None:
    """The Mosaic kernel's one block a word (mosaic_matmul._decode_asm): plane j's raw codes in
    $2j (bytes 0, 1) and $2j+1 (bytes 2, 3), each mapping to the trit as a_j v + b_j."""
    from kernels_pallas.mosaic_matmul import _decode_asm

    asm, outs = _decode_asm(layout)
    words, reg = _words_with_every_byte_at(layout, position, seed=20 + position)
    out = run_ptx(asm, {f"${outs}": reg})
    a, b = plane_affine(layout)
    for j in range(outs // 2):
        lo, hi = out[f"${2 * j}"], out[f"${2 * j + 1}"]
        lanes = np.stack([lo & 0xFFFF, lo >> 16, hi & 0xFFFF, hi >> 16], axis=1)
        v = _bf16_to_f32(lanes.astype(np.uint32)).astype(np.float64)
        want = _plane_trits(words, layout, j)
        np.testing.assert_array_equal(a[j] * v + b[j], want.astype(np.float64))


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_mosaic_plane_wise_ptx_gives_every_planes_raw_codes(layout: str, position: int) -> None:
    """The plane-wise decode (MosaicConfig.in_flight): SPREAD_ASM on a word, then
    _plane_asm(j) on each of its two registers in turn, gives the same affine raw codes."""
    from kernels_pallas.mosaic_matmul import SPREAD_ASM, _plane_asm

    words, reg = _words_with_every_byte_at(layout, position, seed=40 + position)
    spread = run_ptx(SPREAD_ASM, {"$2": reg})
    state = [spread["$0"], spread["$1"]]
    a, b = plane_affine(layout)
    for j in range(layouts.TRITS_PER_BYTE[layout]):
        asm, outs = _plane_asm(layout, j)
        codes = []
        for r in range(2):
            out = run_ptx(asm, {f"${outs}": state[r]})
            codes.append(out["$0"])
            if outs == 2:
                state[r] = out["$1"]
        lo, hi = codes
        lanes = np.stack([lo & 0xFFFF, lo >> 16, hi & 0xFFFF, hi >> 16], axis=1)
        v = _bf16_to_f32(lanes.astype(np.uint32)).astype(np.float64)
        want = _plane_trits(words, layout, j)
        np.testing.assert_array_equal(a[j] * v + b[j], want.astype(np.float64))

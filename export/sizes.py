"""Bytes of the ternary part of each export format, from the model config alone (no arrays)."""

from __future__ import annotations

from dataclasses import dataclass

from export import formats as fmt
from export.gguf_blocks import BLOCK_BYTES
from export.native import linear_shapes
from export.ternary_codec import packed_stack_shape
from trilm_jax.config import ModelConfig

BF16_BYTES = 2


@dataclass(frozen=True)
class TernarySize:
    n_ternary_weights: int
    packed_bytes: int  # trits only
    scale_bytes: int  # gammas (native: float32 [L, G] per linear; GGUF: f16 per block)
    bf16_bytes: int  # the same weights as bf16

    @property
    def total_bytes(self) -> int:
        return self.packed_bytes + self.scale_bytes

    @property
    def ratio_to_bf16(self) -> float:
        return self.total_bytes / self.bf16_bytes


def ternary_size(config: ModelConfig, format_name: str) -> TernarySize:
    """Size of the ternary linears of ``config`` in ``format_name`` (native or GGUF)."""
    shapes = linear_shapes(config)
    n_weights = sum(L * k * n for L, k, n in shapes.values())
    if format_name in fmt.NATIVE_LAYOUT_OF_FORMAT:
        layout = fmt.NATIVE_LAYOUT_OF_FORMAT[format_name]
        packed = 0
        for shape in shapes.values():
            L, r, n = packed_stack_shape(shape, layout)
            packed += L * r * n
        scales = 4 * sum(L * config.ternary_scale_shards for L, _, _ in shapes.values())
        return TernarySize(n_weights, packed, scales, BF16_BYTES * n_weights)
    qtype = {fmt.FORMAT_GGUF_TQ2_0: "TQ2_0", fmt.FORMAT_GGUF_TQ1_0: "TQ1_0"}.get(format_name)
    if qtype is None:
        raise ValueError(f"format {format_name!r} has no ternary part")
    n_blocks = n_weights // fmt.QK_K
    return TernarySize(
        n_weights, n_blocks * (BLOCK_BYTES[qtype] - 2), 2 * n_blocks, BF16_BYTES * n_weights
    )

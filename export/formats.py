"""Every constant of the export formats: names, versions, metadata keys, tensor names.

One module, as llama.cpp's ``gguf-py/gguf/constants.py`` keeps its format constants, so that the
writers, the readers, the tests and ``docs/export.md`` agree on one spelling.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------ CLI format names

FORMAT_NATIVE_2BIT = "trilm-2bit"
FORMAT_NATIVE_1P6BIT = "trilm-1.6bit"
FORMAT_GGUF_TQ2_0 = "gguf-tq2_0"
FORMAT_GGUF_TQ1_0 = "gguf-tq1_0"
FORMAT_HF = "hf"
EXPORT_FORMATS: tuple[str, ...] = (
    FORMAT_NATIVE_2BIT,
    FORMAT_NATIVE_1P6BIT,
    FORMAT_GGUF_TQ2_0,
    FORMAT_GGUF_TQ1_0,
    FORMAT_HF,
)

NATIVE_LAYOUT_OF_FORMAT: dict[str, str] = {
    FORMAT_NATIVE_2BIT: "2bit",
    FORMAT_NATIVE_1P6BIT: "1.6bit",
}
"""Packed layout (kernels_pallas/layouts.py) of each native format."""

# ---------------------------------------------------------------------- native packed safetensors

NATIVE_FORMAT_NAME = "trilm-packed"
NATIVE_FORMAT_VERSION = 1
"""Bumped whenever a tensor name, dtype, shape rule or metadata key changes meaning."""

# Metadata keys (safetensors ``__metadata__`` is a str -> str map).
META_FORMAT = "format"
META_VERSION = "format_version"
META_LAYOUT = "trit_layout"
META_SCALE_LAYOUT = "scale_layout"
META_MODEL_CONFIG = "model_config"
META_TOKENIZER = "tokenizer"
META_COMPUTE_DTYPE = "compute_dtype"
META_SOURCE = "source_checkpoint"
NATIVE_REQUIRED_META: tuple[str, ...] = (
    META_FORMAT,
    META_VERSION,
    META_LAYOUT,
    META_SCALE_LAYOUT,
    META_MODEL_CONFIG,
    META_TOKENIZER,
)

SCALE_LAYOUT = "per-shard-float32-v1"
"""``<linear>.scale`` is float32 ``[L, G]``: one gamma per layer and per tensor-parallel shard
(``G = model.ternary_scale_shards``, 1 = one gamma per matrix); ``<linear>.scale_axis`` names the
axis the shards split ("out" for q, k, v, gate, up; "in" for o, down), as trilm_jax.model."""

PACKED_SUFFIX = ".packed"
SCALE_SUFFIX = ".scale"
SCALE_AXIS_META_PREFIX = "scale_axis."

# Our parameter paths (trilm_jax/model/transformer.py), in the order every writer uses.
ATTN_LINEARS: tuple[str, ...] = ("q", "k", "v", "o")
MLP_LINEARS: tuple[str, ...] = ("gate", "up", "down")
LINEAR_PATHS: tuple[str, ...] = tuple(f"blocks.attn.{n}" for n in ATTN_LINEARS) + tuple(
    f"blocks.mlp.{n}" for n in MLP_LINEARS
)
"""Stacked linears ``[L, in, out]``; their latent weight is ``<path>.kernel``."""
NORM_PATHS: tuple[str, ...] = ("blocks.attn_norm.scale", "blocks.mlp_norm.scale")
EMBED_PATH = "embed"
FINAL_NORM_PATH = "final_norm.scale"
HEAD_PATH = "head"

# ------------------------------------------------------------------------------------------ GGUF
# Names as in llama.cpp's gguf-py/gguf/constants.py (MODEL_ARCH.LLAMA tensor map) and
# convert_hf_to_gguf.py; block layouts in ggml/src/ggml-common.h (block_tq1_0, block_tq2_0).

GGUF_ARCH = "llama"
QK_K = 256
"""Weights per TQ1_0 / TQ2_0 block (ggml's super-block size)."""
TQ2_0_BLOCK_BYTES = QK_K // 4 + 2  # qs[64] + f16 d
TQ1_0_BLOCK_BYTES = (QK_K - 4 * QK_K // 64) // 5 + QK_K // 64 + 2  # qs[48] + qh[4] + f16 d

GGUF_TENSOR_NAMES: dict[str, str] = {
    "blocks.attn.q": "blk.{i}.attn_q.weight",
    "blocks.attn.k": "blk.{i}.attn_k.weight",
    "blocks.attn.v": "blk.{i}.attn_v.weight",
    "blocks.attn.o": "blk.{i}.attn_output.weight",
    "blocks.mlp.gate": "blk.{i}.ffn_gate.weight",
    "blocks.mlp.up": "blk.{i}.ffn_up.weight",
    "blocks.mlp.down": "blk.{i}.ffn_down.weight",
    "blocks.attn_norm.scale": "blk.{i}.attn_norm.weight",
    "blocks.mlp_norm.scale": "blk.{i}.ffn_norm.weight",
    EMBED_PATH: "token_embd.weight",
    FINAL_NORM_PATH: "output_norm.weight",
    HEAD_PATH: "output.weight",
}
GGUF_TRILM_PREFIX = "trilm."
"""Our own GGUF keys (format version, per-tensor scale note); llama.cpp ignores unknown keys."""

# ------------------------------------------------------------------------------ Hugging Face

HF_WEIGHTS_FILE = "model.safetensors"
HF_CONFIG_FILE = "config.json"
HF_TENSOR_NAMES: dict[str, str] = {
    "blocks.attn.q": "model.layers.{i}.self_attn.q_proj.weight",
    "blocks.attn.k": "model.layers.{i}.self_attn.k_proj.weight",
    "blocks.attn.v": "model.layers.{i}.self_attn.v_proj.weight",
    "blocks.attn.o": "model.layers.{i}.self_attn.o_proj.weight",
    "blocks.mlp.gate": "model.layers.{i}.mlp.gate_proj.weight",
    "blocks.mlp.up": "model.layers.{i}.mlp.up_proj.weight",
    "blocks.mlp.down": "model.layers.{i}.mlp.down_proj.weight",
    "blocks.attn_norm.scale": "model.layers.{i}.input_layernorm.weight",
    "blocks.mlp_norm.scale": "model.layers.{i}.post_attention_layernorm.weight",
    EMBED_PATH: "model.embed_tokens.weight",
    FINAL_NORM_PATH: "model.norm.weight",
    HEAD_PATH: "lm_head.weight",
}
HF_DTYPES: tuple[str, ...] = ("bfloat16", "float32")

# ------------------------------------------------------------------------ byte tokenizer names

BYTE_TOKENIZER = "byte"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"

"""GGUF export for llama.cpp: LLaMA architecture, linears as TQ2_0 / TQ1_0 holding our exact trits
with gamma in each block's f16 scale, everything else F32.

Conventions followed (llama.cpp ``convert_hf_to_gguf.py``, ``LlamaModel``):
  * GGUF lists dimensions innermost first; a numpy ``[out, in]`` array (HF's linear layout, ours
    transposed) becomes ``ne = [in, out]``, so each GGUF row is one output feature and its
    256-weight blocks run along the input features.
  * llama.cpp's LLaMA rope rotates adjacent pairs ``(2i, 2i + 1)``; HF (and our) rope rotates
    halves ``(i, i + hd/2)``. ``convert_hf_to_gguf`` therefore permutes the output rows of q and
    k within each head (:func:`permute_qk`); we do the same.
  * Norm weights are F32: llama.cpp aborts at the first token when they are F16
    (shared/ARCHITECTURE.md, "Facts seen here").

The scale of a block is ``float16(gamma)``: gamma rounds to the nearest f16 (relative error at
most 2^-11, about 4.9e-4, for gamma >= 6.1e-5), so llama.cpp's weights are
``f16(gamma) * trit`` while ours are ``gamma * trit``. The trits themselves are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
from tqdm import tqdm

from export import formats as fmt
from export.errors import UnsupportedShapeError
from export.gguf_blocks import BLOCK_BYTES, ENCODERS
from export.gguf_vocab import add_byte_vocab
from export.native import float_shapes, linear_shapes
from export.source import CheckpointSource
from export.ternary_codec import expand_gamma, ternary_parts
from trilm_jax.config import ModelConfig

GGUF_TYPES = {
    fmt.FORMAT_GGUF_TQ2_0: (
        "TQ2_0",
        gguf.GGMLQuantizationType.TQ2_0,
        gguf.LlamaFileType.MOSTLY_TQ2_0,
    ),
    fmt.FORMAT_GGUF_TQ1_0: (
        "TQ1_0",
        gguf.GGMLQuantizationType.TQ1_0,
        gguf.LlamaFileType.MOSTLY_TQ1_0,
    ),
}


def permute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows ``[n_heads * hd, ...]`` from rotate-half to llama.cpp's interleaved pair order:
    row ``h * hd + 2 i + j`` <- ``h * hd + j * hd / 2 + i`` (convert_hf_to_gguf ``permute``)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def check_gguf_shapes(config: ModelConfig) -> None:
    """UnsupportedShapeError unless every linear's input size is a multiple of 256."""
    for path, (_, k, _) in linear_shapes(config).items():
        if k % fmt.QK_K:
            raise UnsupportedShapeError(
                f"{path} has {k} input features per row; GGUF TQ1_0/TQ2_0 need a multiple of "
                f"{fmt.QK_K} (d_model and d_ff must be multiples of {fmt.QK_K}; use the native "
                "format for this model)"
            )


def _linear_tensors(
    source: CheckpointSource, path: str, qtype_name: str
) -> Iterator[tuple[int, np.ndarray]]:
    """(layer, uint8 blocks ``[out, in / 256 * block_bytes]``) of one stacked linear."""
    config = source.config
    spec = source.linear_spec(path)
    trits, gamma = ternary_parts(
        source.array(path + ".kernel"), spec.eps, spec.n_scale_shards, spec.shard_axis
    )
    gamma_full = np.broadcast_to(expand_gamma(gamma, trits.shape, spec.shard_axis), trits.shape)
    n_heads = {"blocks.attn.q": config.n_heads, "blocks.attn.k": config.n_kv_heads}.get(path)
    for layer in range(trits.shape[0]):
        rows, scale = trits[layer].T, gamma_full[layer].T  # [out, in], HF's layout
        if n_heads is not None:
            rows, scale = permute_qk(rows, n_heads), permute_qk(scale, n_heads)
        m, k = rows.shape
        blocks = scale.reshape(m, k // fmt.QK_K, fmt.QK_K)
        if np.any(blocks != blocks[..., :1]):
            raise UnsupportedShapeError(
                f"{path}: its {spec.n_scale_shards} scale shards do not align with 256-weight "
                "blocks; GGUF holds one scale per block"
            )
        yield layer, ENCODERS[qtype_name](rows, blocks[..., 0])


def _float_tensor(source: CheckpointSource, path: str) -> np.ndarray:
    array = source.array(path)
    return np.ascontiguousarray(array.T) if path == fmt.HEAD_PATH else array  # head -> [V, D]


def _add_metadata(writer: gguf.GGUFWriter, source: CheckpointSource, file_type: int) -> None:
    c = source.config
    writer.add_name(f"trilm {c.name}")
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(c.max_seq_len)
    writer.add_embedding_length(c.d_model)
    writer.add_block_count(c.n_layers)
    writer.add_feed_forward_length(c.d_ff)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_head_count(c.n_heads)
    writer.add_head_count_kv(c.n_kv_heads)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_vocab_size(c.vocab_size)
    writer.add_uint32(fmt.GGUF_TRILM_PREFIX + "format_version", fmt.NATIVE_FORMAT_VERSION)
    writer.add_string(fmt.GGUF_TRILM_PREFIX + "scale", "block d = float16(gamma)")
    add_byte_vocab(writer, source.run_config.data.tokenizer, c.vocab_size)


def write_gguf(
    source: CheckpointSource, out: Path, fmt_name: str, progress: bool = False
) -> dict[str, int]:
    """Write ``source`` as GGUF (``fmt_name`` gguf-tq2_0 or gguf-tq1_0); returns byte counts
    (``file``, ``ternary`` = the TQ tensors)."""
    config = source.config
    if config.linear != "ternary":
        raise UnsupportedShapeError(
            f"model.linear={config.linear!r}: GGUF TQ types hold TriLM weights; export a FloatLM "
            "with --format hf"
        )
    check_gguf_shapes(config)
    qtype_name, qtype, file_type = GGUF_TYPES[fmt_name]
    writer = gguf.GGUFWriter(out, fmt.GGUF_ARCH)
    _add_metadata(writer, source, file_type)

    # Every tensor's info goes in the header first; data then streams one tensor at a time.
    floats = float_shapes(config)
    n_tensors = 0
    for path, shape in floats.items():
        name = fmt.GGUF_TENSOR_NAMES[path]
        if len(shape) == 2 and path in fmt.NORM_PATHS:
            n_tensors += config.n_layers
            for i in range(config.n_layers):
                writer.add_tensor_info(name.format(i=i), (shape[1],), np.float32, 4 * shape[1])
        else:
            numpy_shape = shape[::-1] if path == fmt.HEAD_PATH else shape
            n_tensors += 1
            nbytes = 4 * int(np.prod(shape))
            writer.add_tensor_info(name, numpy_shape, np.float32, nbytes)
    for path, (n_layers, k, n) in linear_shapes(config).items():
        row_bytes = k // fmt.QK_K * BLOCK_BYTES[qtype_name]
        for i in range(n_layers):
            name = fmt.GGUF_TENSOR_NAMES[path].format(i=i)
            n_tensors += 1
            writer.add_tensor_info(name, (n, row_bytes), np.uint8, n * row_bytes, raw_dtype=qtype)

    writer.write_header_to_file(out)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    ternary_bytes = 0
    bar = tqdm(total=n_tensors, disable=not progress, desc="export gguf", unit="tensor")
    # Data in the same order as the infos above.
    for path, shape in floats.items():
        array = _float_tensor(source, path)
        if path in fmt.NORM_PATHS:
            for i in range(shape[0]):
                writer.write_tensor_data(np.ascontiguousarray(array[i]))
                bar.update()
        else:
            writer.write_tensor_data(array)
            bar.update()
    for path in linear_shapes(config):
        for _, blocks in _linear_tensors(source, path, qtype_name):
            writer.write_tensor_data(blocks)
            ternary_bytes += blocks.nbytes
            bar.update()
    bar.close()
    writer.close()
    return {"file": Path(out).stat().st_size, "ternary": ternary_bytes}

"""Hugging Face Llama export: ``config.json`` (LlamaForCausalLM), ``model.safetensors`` of the
effective weights, and tokenizer files for the byte tokenizer.

Mapping (transformers ``models/llama/modeling_llama.py``): HF linears are ``nn.Linear`` with
weights ``[out, in]`` (``y = x W^T``), ours ``[in, out]`` (``y = x W``): every kernel is
transposed, the head too (``lm_head.weight`` is ``[V, D]``). Both ropes rotate halves, so q and k
need no permutation. A TriLM is written as its effective weights ``gamma * trits``, computed
exactly as the forward pass, then cast to bf16 (default) or kept float32.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
from tqdm import tqdm

from export import formats as fmt
from export.errors import ExportError
from export.hf_tokenizer import write_byte_tokenizer
from export.native import float_shapes, linear_shapes
from export.safetensors_stream import SafetensorsStreamWriter
from export.source import CheckpointSource, model_config_dict
from export.ternary_codec import effective_weight, ternary_parts
from trilm_jax.config import ModelConfig
from trilm_jax.data.tokenizer import ByteTokenizer

NUMPY_DTYPES = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float32": np.dtype(np.float32)}


def hf_config(config: ModelConfig, dtype: str) -> dict:
    """``config.json`` of a LlamaForCausalLM with ``config``'s shapes; our config under
    ``"trilm"`` (transformers keeps unknown keys)."""
    tok = ByteTokenizer()
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": tok.eos_id,
        "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id,
        "torch_dtype": dtype,
        "dtype": dtype,
        "trilm": {"model_config": model_config_dict(config), "weights": "effective"},
    }


def hf_plan(config: ModelConfig, dtype: np.dtype) -> list[tuple[str, str, int | None, tuple]]:
    """(HF name, our path, layer or None, HF shape) of every tensor, in file order."""
    plan: list[tuple[str, str, int | None, tuple]] = []
    floats = float_shapes(config)
    plan.append((fmt.HF_TENSOR_NAMES[fmt.EMBED_PATH], fmt.EMBED_PATH, None, floats["embed"]))
    for path, (n_layers, k, n) in linear_shapes(config).items():
        plan += [(fmt.HF_TENSOR_NAMES[path].format(i=i), path, i, (n, k)) for i in range(n_layers)]
    for path in fmt.NORM_PATHS:
        n_layers, d = floats[path]
        plan += [(fmt.HF_TENSOR_NAMES[path].format(i=i), path, i, (d,)) for i in range(n_layers)]
    plan.append(
        (fmt.HF_TENSOR_NAMES[fmt.FINAL_NORM_PATH], fmt.FINAL_NORM_PATH, None, (config.d_model,))
    )
    if not config.tie_embeddings:
        plan.append((fmt.HF_TENSOR_NAMES[fmt.HEAD_PATH], fmt.HEAD_PATH, None, floats["head"][::-1]))
    del dtype
    return plan


def _layer_getter(source: CheckpointSource, path: str) -> Callable[[int | None], np.ndarray]:
    """``get(layer)``: one layer of a stacked tensor (``None``: an unstacked one). A TriLM's
    linears are held as int8 trits + gammas and turned into float32 ``gamma * trits`` one layer
    at a time, so no float32 copy of a whole stack is made."""
    if path not in fmt.LINEAR_PATHS or source.config.linear != "ternary":
        stack = source.array(path + ".kernel" if path in fmt.LINEAR_PATHS else path)
        return lambda layer: stack if layer is None else stack[layer]
    spec = source.linear_spec(path)
    trits, gamma = ternary_parts(
        source.array(path + ".kernel"), spec.eps, spec.n_scale_shards, spec.shard_axis
    )
    return lambda layer: effective_weight(
        trits[layer : layer + 1], gamma[layer : layer + 1], spec.shard_axis
    )[0]


def write_hf(
    source: CheckpointSource, out_dir: Path, dtype: str = "bfloat16", progress: bool = False
) -> dict[str, int]:
    """Write the HF directory; returns byte counts (``file`` = model.safetensors, ``ternary`` =
    the linears' bytes in it)."""
    if dtype not in NUMPY_DTYPES:
        raise ExportError(f"HF dtype {dtype!r}: expected one of {fmt.HF_DTYPES}")
    config = source.config
    np_dtype = NUMPY_DTYPES[dtype]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / fmt.HF_CONFIG_FILE).write_text(json.dumps(hf_config(config, dtype), indent=2) + "\n")
    (out_dir / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 256, "eos_token_id": 256, "pad_token_id": 257}, indent=2) + "\n"
    )
    write_byte_tokenizer(out_dir, source.run_config.data.tokenizer, config.max_seq_len)
    plan = hf_plan(config, np_dtype)
    metadata = {"format": "pt", "trilm_source": str(source.directory)}
    target = out_dir / fmt.HF_WEIGHTS_FILE
    linear_bytes = 0
    stacked: tuple[str, Callable[[int | None], np.ndarray]] | None = None  # the one being written
    with SafetensorsStreamWriter(
        target, [(name, np_dtype, shape) for name, _, _, shape in plan], metadata
    ) as writer:
        for name, path, layer, _ in tqdm(
            plan, disable=not progress, desc="export hf", unit="tensor"
        ):
            if stacked is None or stacked[0] != path:
                stacked = None  # drop the previous stack before building the next
                stacked = (path, _layer_getter(source, path))
            array = stacked[1](layer)
            if path in fmt.LINEAR_PATHS or path == fmt.HEAD_PATH:
                array = array.T  # ours [in, out] -> HF [out, in]
            array = np.ascontiguousarray(array).astype(np_dtype)
            if path in fmt.LINEAR_PATHS:
                linear_bytes += array.nbytes
            writer.write(name, array)
    return {"file": target.stat().st_size, "ternary": linear_bytes}

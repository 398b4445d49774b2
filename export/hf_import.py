"""Hugging Face Llama directory -> a trilm run directory with an orbax checkpoint at step 0.

The checkpoint has everything ``trilm train --resume`` restores (parameters, a freshly
initialised optimizer state, the data iterator's start state, the run config) and
``trilm generate --checkpoint`` reads. HF linears ``[out, in]`` are transposed to ours
``[in, out]``; q and k need no permutation (both ropes rotate halves).

``linear="float"`` (the default) keeps the weights as they are, so the imported model computes
the same function, TriLM exports included (their effective weights are already ``gamma *
trits``). ``linear="ternary"`` makes them the latent weights of a TriLM to train further.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml
from flax import nnx

from export import formats as fmt
from export.errors import HFImportError
from export.native import float_shapes, linear_shapes
from export.safetensors_stream import data_start, read_header, read_tensor
from export.source import model_config_dict, model_from_arrays
from trilm_jax.config import ConfigError, RunConfig, config_from_dict, to_dict


def _require(hf: dict, key: str, path: Path):
    if key not in hf:
        raise HFImportError(f"{path}: config.json lacks {key!r}")
    return hf[key]


def model_config_from_hf(directory: Path, linear: str) -> dict:
    """Our model config (as a dict) from an HF ``config.json`` of a Llama."""
    path = directory / fmt.HF_CONFIG_FILE
    if not path.is_file():
        raise HFImportError(f"{directory}: no {fmt.HF_CONFIG_FILE}; not a Hugging Face model")
    hf = json.loads(path.read_text())
    if hf.get("model_type") != "llama":
        raise HFImportError(f"{path}: model_type {hf.get('model_type')!r}, expected 'llama'")
    for key, allowed in (("hidden_act", ("silu",)), ("attention_bias", (False, None))):
        if hf.get(key) not in allowed:
            raise HFImportError(f"{path}: {key}={hf.get(key)!r} is not supported (want {allowed})")
    if hf.get("mlp_bias"):
        raise HFImportError(f"{path}: mlp_bias=true is not supported")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise HFImportError(f"{path}: rope scaling {rope} is not supported (default rope only)")
    d, heads = _require(hf, "hidden_size", path), _require(hf, "num_attention_heads", path)
    head_dim = hf.get("head_dim") or d // heads
    if head_dim * heads != d:
        raise HFImportError(
            f"{path}: head_dim={head_dim} x {heads} heads != hidden_size={d}; trilm models have "
            "head_dim = d_model / n_heads"
        )
    base = (hf.get("trilm") or {}).get("model_config", {})
    return {
        **base,
        "name": base.get("name", directory.name),
        "linear": linear,
        "vocab_size": _require(hf, "vocab_size", path),
        "d_model": d,
        "n_layers": _require(hf, "num_hidden_layers", path),
        "n_heads": heads,
        "n_kv_heads": hf.get("num_key_value_heads") or heads,
        "d_ff": _require(hf, "intermediate_size", path),
        "max_seq_len": _require(hf, "max_position_embeddings", path),
        "rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
    }


class _HFTensors:
    """Name -> tensor over ``model.safetensors`` or a sharded ``*.index.json`` set."""

    def __init__(self, directory: Path):
        index = directory / (fmt.HF_WEIGHTS_FILE + ".index.json")
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        elif (directory / fmt.HF_WEIGHTS_FILE).is_file():
            files = [fmt.HF_WEIGHTS_FILE]
        else:
            raise HFImportError(f"{directory}: no {fmt.HF_WEIGHTS_FILE} (nor its .index.json)")
        self.entries: dict[str, tuple[Path, dict, int]] = {}
        for name in files:
            path = directory / name
            header, _ = read_header(path)
            start = data_start(path)
            self.entries.update({k: (path, v, start) for k, v in header.items()})

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.entries:
            raise HFImportError(f"tensor {name!r} is missing from the safetensors files")
        path, entry, start = self.entries[name]
        if tuple(entry["shape"]) != shape:
            raise HFImportError(
                f"{path}: tensor {name!r} has shape {entry['shape']}, expected {list(shape)}"
            )
        return np.asarray(read_tensor(path, entry, start), np.float32)


def _our_arrays(tensors: _HFTensors, config) -> Iterator[tuple[str, np.ndarray]]:
    floats = float_shapes(config)
    names = fmt.HF_TENSOR_NAMES
    yield fmt.EMBED_PATH, tensors.get(names[fmt.EMBED_PATH], floats[fmt.EMBED_PATH])
    for path in fmt.NORM_PATHS:
        n_layers, d = floats[path]
        yield path, np.stack([tensors.get(names[path].format(i=i), (d,)) for i in range(n_layers)])
    yield fmt.FINAL_NORM_PATH, tensors.get(names[fmt.FINAL_NORM_PATH], floats[fmt.FINAL_NORM_PATH])
    if not config.tie_embeddings:
        yield fmt.HEAD_PATH, tensors.get(names[fmt.HEAD_PATH], floats[fmt.HEAD_PATH][::-1]).T
    for path, (n_layers, k, n) in linear_shapes(config).items():
        name = names[path]
        yield (
            path + ".kernel",
            np.stack([tensors.get(name.format(i=i), (n, k)).T for i in range(n_layers)]),
        )


def import_hf(
    directory: str | Path, run_config: RunConfig, out_dir: str | Path, linear: str = "float"
) -> RunConfig:
    """Write ``out_dir`` (config.yaml + checkpoints/0) from the HF model in ``directory``;
    ``run_config`` supplies every non-model setting. Returns the run config written."""
    from trilm_jax.data.pipeline import build_splits, train_dataset
    from trilm_jax.train.checkpoint import Checkpointer, RunDirectoryError
    from trilm_jax.train.optimizer import make_optimizer

    directory, out_dir = Path(directory), Path(out_dir).resolve()
    if not directory.is_dir():
        raise HFImportError(f"{directory} is not a directory")
    if (out_dir / "checkpoints").exists():
        raise RunDirectoryError(f"{out_dir} already holds checkpoints; choose a new --out")
    tree = to_dict(run_config)
    tree["model"] = model_config_from_hf(directory, linear)
    tree["train"]["out_dir"] = str(out_dir)
    tree["data"]["seq_len"] = min(tree["data"]["seq_len"], tree["model"]["max_seq_len"])
    try:
        config = config_from_dict(tree, source=str(directory / fmt.HF_CONFIG_FILE))
    except ConfigError as err:
        raise HFImportError(str(err)) from None
    try:
        model = model_from_arrays(config.model, _our_arrays(_HFTensors(directory), config.model))
    except ValueError as err:
        if isinstance(err, HFImportError):
            raise
        raise HFImportError(f"{directory}: {err}") from None
    params = nnx.split(model)[1]
    del model
    optimizer = make_optimizer(config.optimizer, config.train.steps)
    opt_state = optimizer.init(params)
    data_iter = iter(
        train_dataset(build_splits(config.data), config.data, config.train.global_batch_size, 0, 1)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    checkpointer = Checkpointer(out_dir / "checkpoints", config.checkpoint.keep, async_save=False)
    checkpointer.save(0, params, opt_state, data_iter.get_state(), config)
    checkpointer.wait()
    checkpointer.close()
    (out_dir / "import_info.json").write_text(
        json.dumps(
            {"source": str(directory.resolve()), "model": model_config_dict(config.model)}, indent=2
        )
        + "\n"
    )
    return config

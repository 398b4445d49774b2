"""The one place export reads a training checkpoint: restore its parameters once, then hand out
one tensor at a time (numpy), with each linear's quantizer settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flax import nnx

from trilm_jax.config import ModelConfig, RunConfig
from trilm_jax.model.transformer import Linear, Transformer
from trilm_jax.train.checkpoint import find_checkpoint, load_checkpoint_config, restore_params


@dataclass(frozen=True)
class LinearSpec:
    """Quantizer settings of one stacked linear, as its ``Linear`` module holds them."""

    path: str  # e.g. "blocks.attn.q"
    eps: float
    n_scale_shards: int
    shard_axis: int  # -1: per output shard (column-parallel), -2: per input shard


@dataclass
class CheckpointSource:
    """A restored checkpoint: the model (held once), its run config, step and directory."""

    model: Transformer
    run_config: RunConfig
    step: int
    directory: Path

    @property
    def config(self) -> ModelConfig:
        return self.run_config.model

    def module(self, path: str) -> nnx.Module:
        node = self.model
        for part in path.split("."):
            node = getattr(node, part)
        return node

    def array(self, path: str) -> np.ndarray:
        """The float32 parameter at ``path`` ("embed", "blocks.attn.q.kernel", ...)."""
        *parents, leaf = path.split(".")
        module = self.module(".".join(parents)) if parents else self.model
        return np.asarray(getattr(module, leaf)[...], np.float32)

    def linear_spec(self, path: str) -> LinearSpec:
        linear = self.module(path)
        assert isinstance(linear, Linear), path
        return LinearSpec(path, linear.eps, linear.n_scale_shards, linear.shard_axis)


def open_checkpoint(path: str | Path) -> CheckpointSource:
    """Restore the parameters of the newest (or the given) step; CheckpointError if none."""
    directory, step = find_checkpoint(path)
    run_config = load_checkpoint_config(directory, step)
    abstract = nnx.eval_shape(lambda: Transformer(run_config.model, nnx.Rngs(0)))
    graphdef, params_like = nnx.split(abstract)
    params = restore_params(directory, step, params_like, as_numpy=True)
    return CheckpointSource(nnx.merge(graphdef, params), run_config, step, directory / str(step))


def model_from_arrays(config: ModelConfig, arrays: Iterator[tuple[str, np.ndarray]]) -> Transformer:
    """A ``Transformer`` of ``config`` whose parameters are ``arrays`` (path -> array, paths as
    in :class:`CheckpointSource`), built without initialising random weights first. Every
    parameter must be given."""
    abstract = nnx.eval_shape(lambda: Transformer(config, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    pure = nnx.to_pure_dict(state)
    missing = set(_leaf_paths(pure))
    for path, value in arrays:
        node = pure
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        expected = tuple(node[leaf].shape)
        if tuple(value.shape) != expected:
            raise ValueError(f"parameter {path}: shape {value.shape}, expected {expected}")
        node[leaf] = np.asarray(value, np.float32)
        missing.discard(path)
    if missing:
        raise ValueError(f"parameters not given: {sorted(missing)}")
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


def _leaf_paths(tree: dict, prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def freeze_linears(model: Transformer) -> Transformer:
    """Mark every linear as holding its effective weight already (no re-quantization), as
    trilm_jax.inference.generate.freeze_weights leaves a model; ``model`` is changed in place."""
    for _, module in nnx.iter_graph(model):
        if isinstance(module, Linear):
            module.ternary = False
    return model


def model_config_from_dict(tree: dict) -> ModelConfig:
    """ModelConfig from a dict (unknown keys are errors), validated like a run config."""
    from trilm_jax.config import config_from_dict

    if not isinstance(tree, dict):
        raise ValueError(f"model config must be a JSON object, got {type(tree).__name__}")
    # Validated as part of a run config whose data section fits any model (seq_len is a run
    # setting, checked against model.max_seq_len).
    data = {"seq_len": tree.get("max_seq_len", ModelConfig.max_seq_len)}
    return config_from_dict({"model": tree, "data": data}, source="model_config").model


def model_config_dict(config: ModelConfig) -> dict:
    return dataclasses.asdict(config)

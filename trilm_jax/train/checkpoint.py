"""Orbax checkpoints of a run: parameters, optimizer state, data position and config, per step.

Layout: ``<run>/checkpoints/<step>/{params,opt_state,data,meta}``. ``meta`` holds the full run
config, so a checkpoint directory alone rebuilds its model (``trilm generate``, ``trilm export``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from trilm_jax.config import ConfigError, RunConfig, config_from_dict, to_dict


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, empty or unreadable; the message names the path."""


class RunDirectoryError(RuntimeError):
    """The run directory holds a previous run that this one would overwrite."""


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params, opt_state, data_state: dict, config: RunConfig) -> None:
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                opt_state=ocp.args.StandardSave(opt_state),
                data=ocp.args.JsonSave(data_state),
                meta=ocp.args.JsonSave({"step": step, "config": to_dict(config)}),
            ),
        )

    def restore(self, step: int, params_like, opt_state_like) -> tuple[Any, Any, dict]:
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(_abstract(params_like)),
                opt_state=ocp.args.StandardRestore(_abstract(opt_state_like)),
                data=ocp.args.JsonRestore(),
            ),
        )
        return restored["params"], restored["opt_state"], restored["data"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def find_checkpoint(path: str | Path) -> tuple[Path, int]:
    """Accept a run directory, its ``checkpoints/`` directory or one step directory; return
    (checkpoints directory, step). Raises CheckpointError naming the path when there is none."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is not a directory")
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if path.name.isdigit() and (path / "meta").exists():
        return path.parent, int(path.name)
    steps = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit() and p.is_dir())
    if not steps:
        raise CheckpointError(f"{path} holds no checkpoint (no numbered step directory)")
    return path, steps[-1]


def _describe(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"


def _restore_items(directory: Path, step: int, **items) -> dict:
    """Restore some items of one step read-only; any failure becomes a CheckpointError."""
    try:
        options = ocp.CheckpointManagerOptions(create=False)
        with ocp.CheckpointManager(directory, options=options) as manager:
            return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as err:  # orbax raises many types for damaged directories
        names = ", ".join(items)
        raise CheckpointError(
            f"{directory / str(step)}: unreadable checkpoint {names} ({_describe(err)})"
        ) from None


def load_checkpoint_config(directory: Path, step: int) -> RunConfig:
    """The run config stored with a checkpoint."""
    meta_dir = directory / str(step) / "meta"
    meta = _restore_items(directory, step, meta=ocp.args.JsonRestore())["meta"]
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{meta_dir}: checkpoint metadata holds no 'config'")
    try:
        return config_from_dict(meta["config"], source=str(meta_dir))
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def restore_params(directory: Path, step: int, params_like, as_numpy: bool = False) -> Any:
    """Only the parameters of a checkpoint (for inference and export).

    ``as_numpy`` restores host numpy arrays instead of jax arrays: the exporter's choice, as it
    skips the copy into device buffers (on a CPU host that copy is a second full-size buffer per
    array while orbax reads; measured on a 390M checkpoint: peak RSS 2.63 GB as jax arrays,
    2.15 GB as numpy, with 1.57 GB of float32 parameters)."""
    if as_numpy:
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), params_like)
        item = ocp.args.PyTreeRestore(item=params_like, restore_args=restore_args)
        return _restore_items(directory, step, params=item)["params"]
    abstract = ocp.args.StandardRestore(_abstract(params_like))
    return _restore_items(directory, step, params=abstract)["params"]

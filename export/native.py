"""The native packed file: one safetensors file holding packed trits, their scales and the
full-precision tensors, with everything needed to rebuild the model in its metadata.

Tensors (``L`` layers, ``K`` in, ``N`` out features; names are our parameter paths):

    embed                              F32 [V, D]
    blocks.<attn|mlp>.<linear>.packed  U8  [L, R, N]   trits in ``trit_layout`` (kernels_pallas)
    blocks.<attn|mlp>.<linear>.scale   F32 [L, G]      gamma per layer and tensor-parallel shard
    blocks.attn_norm.scale             F32 [L, D]
    blocks.mlp_norm.scale              F32 [L, D]
    final_norm.scale                   F32 [D]
    head                               F32 [D, V]      absent when tie_embeddings

docs/export.md documents every key byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from tqdm import tqdm

from export import formats as fmt
from export.errors import (
    FormatVersionError,
    LayoutError,
    MetadataError,
    MissingTensorError,
    PackedFileError,
    TensorShapeError,
    UnsupportedShapeError,
)
from export.safetensors_stream import SafetensorsStreamWriter, read_header
from export.source import (
    CheckpointSource,
    freeze_linears,
    model_config_dict,
    model_config_from_dict,
    model_from_arrays,
)
from export.ternary_codec import (
    effective_weight,
    pack_stack,
    packed_stack_shape,
    scale_axis_name,
    ternary_parts,
    unpack_stack,
)
from kernels_pallas.layouts import LAYOUTS
from trilm_jax.config import ModelConfig
from trilm_jax.model.transformer import Transformer


def linear_shapes(config: ModelConfig) -> dict[str, tuple[int, int, int]]:
    """Stacked ``[L, in, out]`` shape of every ternary linear, in file order."""
    d, f, hd, L = config.d_model, config.d_ff, config.head_dim, config.n_layers
    q, kv = config.n_heads * hd, config.n_kv_heads * hd
    return {
        "blocks.attn.q": (L, d, q),
        "blocks.attn.k": (L, d, kv),
        "blocks.attn.v": (L, d, kv),
        "blocks.attn.o": (L, q, d),
        "blocks.mlp.gate": (L, d, f),
        "blocks.mlp.up": (L, d, f),
        "blocks.mlp.down": (L, f, d),
    }


def float_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the full-precision tensors, in file order (embedding first, head last)."""
    d, L, v = config.d_model, config.n_layers, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {fmt.EMBED_PATH: (v, d)}
    shapes.update({path: (L, d) for path in fmt.NORM_PATHS})
    shapes[fmt.FINAL_NORM_PATH] = (d,)
    if not config.tie_embeddings:
        shapes[fmt.HEAD_PATH] = (d, v)
    return shapes


def shard_axis_of(path: str) -> int:
    """As trilm_jax.model.transformer.Linear: column-parallel (out-sharded) or row-parallel."""
    return -2 if path.endswith((".o", ".down")) else -1


def tensor_plan(config: ModelConfig, layout: str) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    """Every tensor of a native file of ``config`` in ``layout``: (name, dtype, shape)."""
    plan: list[tuple[str, np.dtype, tuple[int, ...]]] = []
    floats = float_shapes(config)
    plan.append((fmt.EMBED_PATH, np.dtype(np.float32), floats[fmt.EMBED_PATH]))
    groups = config.ternary_scale_shards
    for path, shape in linear_shapes(config).items():
        try:
            packed = packed_stack_shape(shape, layout)
        except ValueError as err:
            raise UnsupportedShapeError(f"{path} {shape}: {err}") from None
        plan.append((path + fmt.PACKED_SUFFIX, np.dtype(np.uint8), packed))
        plan.append((path + fmt.SCALE_SUFFIX, np.dtype(np.float32), (shape[0], groups)))
    plan += [(p, np.dtype(np.float32), s) for p, s in floats.items() if p != fmt.EMBED_PATH]
    return plan


def write_native(
    source: CheckpointSource, out: Path, layout: str, progress: bool = False
) -> dict[str, int]:
    """Write ``source`` as a native packed file in ``layout``; returns byte counts
    (``file``, ``ternary`` = packed trits + scales)."""
    config = source.config
    if config.linear != "ternary":
        raise UnsupportedShapeError(
            f"{source.directory}: model.linear={config.linear!r}; packed ternary formats need a "
            "TriLM (model.linear=ternary); export a FloatLM with --format hf"
        )
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    plan = tensor_plan(config, layout)
    metadata = {
        fmt.META_FORMAT: fmt.NATIVE_FORMAT_NAME,
        fmt.META_VERSION: str(fmt.NATIVE_FORMAT_VERSION),
        fmt.META_LAYOUT: layout,
        fmt.META_SCALE_LAYOUT: fmt.SCALE_LAYOUT,
        fmt.META_MODEL_CONFIG: json.dumps(model_config_dict(config), sort_keys=True),
        fmt.META_TOKENIZER: source.run_config.data.tokenizer,
        fmt.META_COMPUTE_DTYPE: source.run_config.train.compute_dtype,
        fmt.META_SOURCE: str(source.directory),
    }
    for path in fmt.LINEAR_PATHS:
        spec = source.linear_spec(path)
        metadata[fmt.SCALE_AXIS_META_PREFIX + path] = scale_axis_name(spec.shard_axis)
    ternary_bytes = 0
    scales: dict[str, np.ndarray] = {}  # gamma of the linear just packed, written right after
    with SafetensorsStreamWriter(out, plan, metadata) as writer:
        for name, _, _ in tqdm(plan, disable=not progress, desc="export", unit="tensor"):
            if name.endswith(fmt.PACKED_SUFFIX):
                spec = source.linear_spec(name[: -len(fmt.PACKED_SUFFIX)])
                kernel = source.array(spec.path + ".kernel")
                trits, scales[spec.path] = ternary_parts(
                    kernel, spec.eps, spec.n_scale_shards, spec.shard_axis
                )
                array = pack_stack(trits, layout)
                ternary_bytes += array.nbytes
            elif name.endswith(fmt.SCALE_SUFFIX) and name[: -len(fmt.SCALE_SUFFIX)] in scales:
                array = scales.pop(name[: -len(fmt.SCALE_SUFFIX)])
                ternary_bytes += array.nbytes
            else:
                array = source.array(name)
            writer.write(name, array)
    return {"file": out.stat().st_size, "ternary": ternary_bytes}


@dataclass
class PackedFile:
    """A validated native file: its config, metadata and lazily read tensors."""

    path: Path
    config: ModelConfig
    layout: str
    tokenizer: str
    compute_dtype: str
    metadata: dict[str, str]

    def tensor(self, name: str) -> np.ndarray:
        with safe_open(str(self.path), framework="numpy") as f:
            return f.get_tensor(name)

    def trits(self, path: str) -> np.ndarray:
        """int8 trits ``[L, in, out]`` of linear ``path``; LayoutError on invalid codes."""
        k = linear_shapes(self.config)[path][1]
        try:
            return unpack_stack(self.tensor(path + fmt.PACKED_SUFFIX), k, self.layout)
        except ValueError as err:
            raise LayoutError(f"{self.path}: tensor {path}{fmt.PACKED_SUFFIX}: {err}") from None

    def effective_weights(self, path: str) -> np.ndarray:
        """float32 ``gamma * trits`` ``[L, in, out]`` of linear ``path``."""
        return effective_weight(
            self.trits(path), self.tensor(path + fmt.SCALE_SUFFIX), shard_axis_of(path)
        )


def read_native(path: str | Path) -> PackedFile:
    """Open and validate a native file: format, version, layout, config, every tensor's name,
    dtype and shape, and the file length. Raises a PackedFileError subclass naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise PackedFileError(f"packed file {path} does not exist or is not a file")
    header, metadata = read_header(path)
    missing = [key for key in fmt.NATIVE_REQUIRED_META if key not in metadata]
    if missing:
        raise MetadataError(f"{path}: metadata lacks {missing}; not a trilm packed file?")
    if metadata[fmt.META_FORMAT] != fmt.NATIVE_FORMAT_NAME:
        raise FormatVersionError(
            f"{path}: format {metadata[fmt.META_FORMAT]!r}, expected {fmt.NATIVE_FORMAT_NAME!r}"
        )
    if metadata[fmt.META_VERSION] != str(fmt.NATIVE_FORMAT_VERSION):
        raise FormatVersionError(
            f"{path}: format_version {metadata[fmt.META_VERSION]!r}; this trilm reads version "
            f"{fmt.NATIVE_FORMAT_VERSION} only (re-export with this version)"
        )
    layout = metadata[fmt.META_LAYOUT]
    if layout not in LAYOUTS:
        raise LayoutError(f"{path}: trit_layout {layout!r}, expected one of {LAYOUTS}")
    if metadata[fmt.META_SCALE_LAYOUT] != fmt.SCALE_LAYOUT:
        raise LayoutError(
            f"{path}: scale_layout {metadata[fmt.META_SCALE_LAYOUT]!r}, "
            f"expected {fmt.SCALE_LAYOUT!r}"
        )
    try:
        config = model_config_from_dict(json.loads(metadata[fmt.META_MODEL_CONFIG]))
    except (ValueError, TypeError) as err:
        raise MetadataError(f"{path}: metadata model_config is invalid: {err}") from None
    for p in fmt.LINEAR_PATHS:
        expected_axis = scale_axis_name(shard_axis_of(p))
        got = metadata.get(fmt.SCALE_AXIS_META_PREFIX + p)
        if got != expected_axis:
            raise MetadataError(
                f"{path}: metadata {fmt.SCALE_AXIS_META_PREFIX + p} is {got!r}, "
                f"expected {expected_axis!r}"
            )
    _check_tensors(path, header, tensor_plan(config, layout))
    return PackedFile(
        path,
        config,
        layout,
        metadata[fmt.META_TOKENIZER],
        metadata.get(fmt.META_COMPUTE_DTYPE, "auto"),
        metadata,
    )


def _check_tensors(path: Path, header: dict, plan: list) -> None:
    from export.safetensors_stream import DTYPE_NAMES

    for name, dtype, shape in plan:
        if name not in header:
            raise MissingTensorError(f"{path}: tensor {name!r} is missing")
        entry = header[name]
        got = (entry.get("dtype"), tuple(entry.get("shape", ())))
        if got != (DTYPE_NAMES[dtype], shape):
            raise TensorShapeError(
                f"{path}: tensor {name!r} is {got[0]} {list(got[1])}, expected "
                f"{DTYPE_NAMES[dtype]} {list(shape)} for the model config in its metadata"
            )
    extra = sorted(set(header) - {name for name, _, _ in plan})
    if extra:
        raise TensorShapeError(f"{path}: unexpected tensors {extra}")


def _param_arrays(packed: PackedFile) -> Iterator[tuple[str, np.ndarray]]:
    for name in float_shapes(packed.config):
        yield name, packed.tensor(name)
    for path in fmt.LINEAR_PATHS:
        yield path + ".kernel", packed.effective_weights(path)


def load_packed_model(
    path: str | Path, keep_packed: bool = False
) -> tuple[Transformer, PackedFile, dict[str, str]]:
    """A ``Transformer`` whose linears hold ``gamma * trits`` and do not re-quantize (the
    reference XLA backend runs it as is), the validated file it came from, and ``{}``.

    With ``keep_packed`` the linears the kernels can take hold the file's packed bytes and
    gammas instead (trilm_jax/inference/packed.py); the third item then names the linears left
    in float, with why. The float weights are built first and then dropped, so loading needs
    the float32 model's memory once."""
    from trilm_jax.inference.packed import attach_packed

    packed = read_native(path)
    model = freeze_linears(model_from_arrays(packed.config, _param_arrays(packed)))
    if not keep_packed:
        return model, packed, {}
    tensors = {
        p: (packed.tensor(p + fmt.PACKED_SUFFIX), packed.tensor(p + fmt.SCALE_SUFFIX))
        for p in fmt.LINEAR_PATHS
    }
    return model, packed, attach_packed(model, tensors, packed.layout)

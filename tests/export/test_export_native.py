"""Checkpoint -> native packed file -> model: bitwise effective weights, same greedy tokens,
and a specific error for each kind of damaged file."""

from __future__ import annotations

import json
import struct

import jax
import numpy as np
import pytest
from flax import nnx

from export.api import export_checkpoint
from export.errors import (
    FormatVersionError,
    LayoutError,
    MissingTensorError,
    PackedFileError,
    TensorShapeError,
    TruncatedFileError,
    UnsupportedShapeError,
)
from export.native import load_packed_model, read_native
from export.source import open_checkpoint
from trilm_jax.inference.generate import freeze_weights, generate
from trilm_jax.inference.load import load_model_from_checkpoint


@pytest.fixture(scope="module")
def packed_files(trained_run, tmp_path_factory):
    run_dir, _, _ = trained_run
    out = tmp_path_factory.mktemp("native")
    files = {}
    for fmt_name in ("trilm-2bit", "trilm-1.6bit"):
        path = out / f"{fmt_name}.safetensors"
        report = export_checkpoint(run_dir, fmt_name, path)
        assert report.file_bytes == path.stat().st_size
        files[fmt_name] = path
    return files


@pytest.mark.parametrize("fmt_name", ["trilm-2bit", "trilm-1.6bit"])
def test_packed_model_has_bitwise_the_forward_weights(trained_run, packed_files, fmt_name):
    run_dir, _, _ = trained_run
    model, config, _ = load_model_from_checkpoint(run_dir)
    expected = nnx.to_pure_dict(nnx.state(freeze_weights(model)))
    loaded, packed, kept = load_packed_model(packed_files[fmt_name])
    assert kept == {}
    assert packed.config == config.model and packed.tokenizer == "byte"
    got = nnx.to_pure_dict(nnx.state(loaded))
    same = jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32)),
        got,
        expected,
    )
    assert all(jax.tree.leaves(same))
    prompt = np.array([82, 79, 77, 69, 79, 58], np.int32)
    np.testing.assert_array_equal(
        generate(loaded, prompt, 12), generate(freeze_weights(model), prompt, 12)
    )


def test_cli_generate_packed_matches_checkpoint(trained_run, packed_files, capsys):
    from trilm_jax.cli import main

    run_dir, _, _ = trained_run
    common = ["--prompt", "ROMEO:", "--temperature", "0", "--max-new-tokens", "16"]
    assert main(["generate", "--checkpoint", str(run_dir), *common]) == 0
    from_checkpoint = capsys.readouterr().out
    assert main(["generate", "--packed", str(packed_files["trilm-1.6bit"]), *common]) == 0
    assert capsys.readouterr().out == from_checkpoint
    with pytest.raises(SystemExit):
        main(["generate", "--packed", "a", "--checkpoint", "b"])


@pytest.mark.parametrize("fmt_name", ["trilm-2bit", "trilm-1.6bit"])
def test_packed_file_serves_from_its_packed_bytes(gguf_run, tmp_path, fmt_name, capsys):
    """keep_packed: the linears whose K and N are multiples of 256 hold the file's bytes and
    gammas (k and v, 256 x 128 here, stay float) and the logits match the float-loaded model's
    (the packed linears take bf16 activations); the CLI serves it with --weights packed."""
    import jax.numpy as jnp

    from trilm_jax.cli import main
    from trilm_jax.model.transformer import Linear

    run_dir, _ = gguf_run
    path = tmp_path / "m.safetensors"
    export_checkpoint(run_dir, fmt_name, path)
    floats, _, _ = load_packed_model(path)
    served, packed, kept = load_packed_model(path, keep_packed=True)
    assert set(kept) == {"blocks.attn.k", "blocks.attn.v"}
    up = served.blocks.mlp.up
    assert up.kernel is None and up.packed_layout == packed.layout
    np.testing.assert_array_equal(np.asarray(up.packed[...]), packed.tensor("blocks.mlp.up.packed"))
    assert (
        sum(
            isinstance(m, Linear) and m.packed_layout is not None for _, m in nnx.iter_graph(served)
        )
        == 5
    )
    tokens = jnp.asarray([[82, 79, 77, 69, 79, 58, 32, 10]], jnp.int32)
    want = np.asarray(floats(tokens)[0], np.float64)
    got = np.asarray(served(tokens)[0], np.float64)
    assert 1e-6 < np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-2
    common = ["--prompt", "ROMEO:", "--max-new-tokens", "4", "--temperature", "0"]
    assert main(["generate", "--packed", str(path), "--weights", "packed", *common]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ROMEO:")
    assert "blocks.attn.k stays float: K=256 and N=128 must be multiples of 256" in err


def _rewrite(src, dst, edit_header=None, truncate_by=0):
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    if edit_header:
        edit_header(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    body = data[8 + n :]
    dst.write_bytes(struct.pack("<Q", len(text)) + text + body[: len(body) - truncate_by])
    return dst


def _set_meta(key, value):
    def edit(header):
        header["__metadata__"][key] = value

    return edit


def _drop(name):
    return lambda header: header.pop(name)


def _reshape(name):
    def edit(header):
        header[name]["shape"] = [header[name]["shape"][0] * 2, *header[name]["shape"][1:]]

    return edit


@pytest.mark.parametrize(
    ("edit", "truncate_by", "error", "words"),
    [
        (None, 10, TruncatedFileError, "truncated"),
        (_set_meta("format_version", "99"), 0, FormatVersionError, "format_version"),
        (_set_meta("format", "other"), 0, FormatVersionError, "format"),
        (_set_meta("trit_layout", "3bit"), 0, LayoutError, "3bit"),
        (_drop("blocks.mlp.up.packed"), 0, MissingTensorError, "blocks.mlp.up.packed"),
        (_reshape("blocks.attn.q.scale"), 0, TensorShapeError, "blocks.attn.q.scale"),
    ],
)
def test_damaged_files_raise_specific_errors(
    packed_files, tmp_path, edit, truncate_by, error, words
):
    bad = _rewrite(packed_files["trilm-2bit"], tmp_path / "bad.safetensors", edit, truncate_by)
    with pytest.raises(error, match=words.replace(".", r"\.")):
        read_native(bad)
    assert issubclass(error, PackedFileError)


def test_invalid_codes_and_missing_file(packed_files, tmp_path):
    path = packed_files["trilm-2bit"]
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    entry = json.loads(data[8 : 8 + n])["blocks.attn.q.packed"]
    data[8 + n + entry["data_offsets"][0]] = 0xFF  # code 3 is not a 2-bit trit code
    bad = tmp_path / "codes.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(LayoutError, match="blocks.attn.q.packed"):
        load_packed_model(bad)
    with pytest.raises(PackedFileError, match="does not exist"):
        read_native(tmp_path / "none.safetensors")


def test_gguf_refuses_rows_that_are_not_blocks(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    with pytest.raises(UnsupportedShapeError, match="multiple of 256"):
        export_checkpoint(run_dir, "gguf-tq2_0", tmp_path / "m.gguf")
    assert open_checkpoint(run_dir).step == 16

"""The ``trilm`` command line: ``trilm train | generate | fit``.

Library code raises specific exceptions; this module alone turns them into one-line messages
and exit codes (2 for bad input, 1 for a failed run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trilm_jax.config import CONFIGS_DIR

DEFAULT_RUN_CONFIG = CONFIGS_DIR / "runs" / "tiny.yaml"


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------- train


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a TriLM or FloatLM from a run config",
        description=(
            "Train a model from a YAML run config plus KEY=VALUE overrides. Writes "
            "<train.out_dir>/{config.yaml, run_info.json, metrics.jsonl, tensorboard/, "
            "checkpoints/} and prints a text sample at the end."
        ),
        epilog=(
            "examples:\n"
            "  trilm train                     # the tiny TriLM on the bundled corpus\n"
            "  trilm train --config configs/runs/tiny.yaml train.steps=50 model.n_layers=2\n"
            "  trilm train model.linear=float optimizer.schedule=cosine   # the FloatLM twin\n"
            "  trilm train --resume train.out_dir=runs/tiny   # continue from the newest one\n"
            "  trilm train --print-config      # show the resolved config and exit\n\n"
            "Every key and its default: trilm_jax/config.py (sections model, data, optimizer,\n"
            "train, checkpoint, mesh)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_RUN_CONFIG,
        help=f"YAML run config (default: {DEFAULT_RUN_CONFIG.relative_to(CONFIGS_DIR.parent)}); "
        "it may include others with 'defaults: [path, ...]'",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in train.out_dir (same data order, same "
        "optimizer state); without it, a directory that holds checkpoints is refused",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved, validated config as YAML and exit",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides applied after the YAML, e.g. train.steps=50",
    )
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from launch.distributed import initialize
    from trilm_jax.config import load_config, to_dict

    config = load_config(args.config, args.overrides)  # validate before joining a cluster
    initialize()  # jax.distributed from SLURM / Kubernetes / TPU / trilm launch local
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    from trilm_jax.train.loop import Trainer

    result = Trainer(config, resume=args.resume, quiet=args.quiet).run()
    if result.val_losses:
        step = max(result.val_losses)
        print(
            f"done: {result.final_step} steps, final validation loss "
            f"{result.val_losses[step]:.4f}, run directory {config.train.out_dir}"
        )
    return 0


# ------------------------------------------------------------------------------------- generate


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint",
        description="Continue a prompt with a trained model, using a KV cache.",
        epilog="example:\n  trilm generate --checkpoint runs/tiny --prompt 'ROMEO:' "
        "--max-new-tokens 200 --temperature 0.8 --top-k 40",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="a run directory, its checkpoints/ directory, or one step directory "
        "(default step: the newest)",
    )
    source.add_argument(
        "--packed",
        type=Path,
        help="a native packed file written by 'trilm export --format trilm-2bit|trilm-1.6bit'",
    )
    p.add_argument(
        "--prompt",
        default="",
        help="text to continue (default: empty, which starts a new document)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        help="tokens to generate (default 200; prompt + new <= model.max_seq_len)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="softmax temperature; 0 = greedy (default 0.8)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=40,
        help="sample among the k most likely tokens; 0 = all (default 40)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--weights",
        choices=("auto", "packed", "float"),
        default="auto",
        help="packed: keep the ternary weights packed and multiply with the Pallas kernels "
        "(an NVIDIA GPU; elsewhere the reference unpacks them at every step, slowly); float: "
        "expand them once to gamma * trits; auto (default): packed on an NVIDIA (CUDA) GPU. "
        "Linears the kernels cannot take (K or N not a multiple of 256) stay float either way",
    )
    p.add_argument(
        "--layout",
        choices=("2bit", "1.6bit"),
        default="2bit",
        help="with --checkpoint and packed weights: the packed layout (a --packed file has "
        "its own)",
    )
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    if args.temperature < 0:
        raise UserError(f"--temperature={args.temperature}: expected >= 0")
    if args.top_k < 0:
        raise UserError(f"--top-k={args.top_k}: expected >= 0")
    import jax

    from kernels_pallas.matmul import is_nvidia_gpu
    from trilm_jax.data.tokenizer import get_tokenizer
    from trilm_jax.inference.generate import freeze_weights, generate
    from trilm_jax.inference.load import load_model_from_checkpoint
    from trilm_jax.train.step import resolve_compute_dtype

    packed_weights = args.weights == "packed" or (
        args.weights == "auto" and is_nvidia_gpu(jax.devices()[0])
    )
    # a native packed file (trilm export) instead of a checkpoint
    if args.packed is not None:
        model, tokenizer_name, compute_dtype, kept = _load_packed_for_generate(
            args.packed, packed_weights
        )
    else:
        model, config, step = load_model_from_checkpoint(args.checkpoint)
        tokenizer_name, compute_dtype = config.data.tokenizer, config.train.compute_dtype
        kept = {}
        if args.weights == "auto" and config.model.linear != "ternary":
            packed_weights = False  # a FloatLM: nothing to pack
        if packed_weights:
            from trilm_jax.inference.packed import pack_model

            try:
                model, kept = pack_model(model, args.layout, progress=sys.stderr.isatty())
            except ValueError as err:
                raise UserError(f"--weights packed: {err}") from None
    if packed_weights:
        for path, why in kept.items():
            print(f"trilm generate: {path} stays float: {why}", file=sys.stderr)
    tokenizer = get_tokenizer(tokenizer_name)
    prompt = tokenizer.encode(args.prompt)
    if len(prompt) == 0:
        prompt = [tokenizer.eos_id]
    try:
        ids = generate(
            freeze_weights(model),
            prompt,
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed,
            compute_dtype=resolve_compute_dtype(compute_dtype),
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    print(args.prompt + tokenizer.decode(ids))
    return 0


# --------------------------------------------------------------------------- export, import-hf


def _load_packed_for_generate(path: Path, keep_packed: bool):
    """(model, tokenizer name, compute dtype, linears left float) from a native packed file; the
    model's ternary linears hold packed bytes with ``keep_packed``, effective weights otherwise."""
    from export.native import load_packed_model

    model, packed, kept = load_packed_model(path, keep_packed)
    return model, packed.tokenizer, packed.compute_dtype, kept


def _add_export(sub: argparse._SubParsersAction) -> None:
    from export.formats import EXPORT_FORMATS, HF_DTYPES

    p = sub.add_parser(
        "export",
        help="write a checkpoint as a packed ternary file, GGUF (llama.cpp) or Hugging Face Llama",
        description="Convert a training checkpoint: trilm-2bit / trilm-1.6bit (native packed "
        "safetensors), gguf-tq2_0 / gguf-tq1_0 (llama.cpp), hf (LlamaForCausalLM directory). "
        "See docs/export.md.",
        epilog="examples:\n"
        "  trilm export --checkpoint runs/tiny --format trilm-2bit --out tiny.2bit.safetensors\n"
        "  trilm export --checkpoint runs/tiny --format gguf-tq2_0 --out tiny.tq2_0.gguf\n"
        "  trilm export --checkpoint runs/tiny --format hf --out tiny-hf/ --hf-dtype float32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a run directory, its checkpoints/ directory, or one step directory",
    )
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="output format")
    p.add_argument("--out", required=True, type=Path, help="output file (hf: a directory)")
    p.add_argument(
        "--hf-dtype",
        choices=HF_DTYPES,
        default="bfloat16",
        help="dtype of the hf format's weights (default bfloat16)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from export.api import export_checkpoint
    from export.errors import ExportError

    try:
        report = export_checkpoint(
            args.checkpoint,
            args.format,
            args.out,
            hf_dtype=args.hf_dtype,
            progress=not args.quiet,
        )
    except ExportError as err:
        raise UserError(str(err)) from None
    print(report.summary())
    return 0


def _add_import_hf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-hf",
        help="turn a Hugging Face Llama directory into a trilm run directory (checkpoint step 0)",
        description="Import config.json + model.safetensors of a LlamaForCausalLM as an orbax "
        "checkpoint that 'trilm generate --checkpoint' and 'trilm train --resume' read.",
        epilog="example:\n  trilm import-hf tiny-hf/ --out runs/tiny-imported\n"
        "  trilm train --config runs/tiny-imported/config.yaml --resume train.steps=100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", type=Path, help="the Hugging Face model directory")
    p.add_argument("--out", required=True, type=Path, help="run directory to create")
    p.add_argument(
        "--linear",
        choices=("float", "ternary"),
        default="float",
        help="float (default): the same function as the HF model; ternary: use the weights as "
        "TriLM latent weights for further training",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML run config for every non-model setting (default: built-in defaults)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.steps=50"
    )
    p.set_defaults(func=_run_import_hf)


def _run_import_hf(args: argparse.Namespace) -> int:
    from export.errors import ExportError
    from export.hf_import import import_hf
    from trilm_jax.config import load_config

    base = load_config(args.config, args.overrides)
    try:
        config = import_hf(args.directory, base, args.out, linear=args.linear)
    except ExportError as err:
        raise UserError(str(err)) from None
    print(
        f"imported {args.directory} as {config.model.linear} model into {config.train.out_dir} "
        f"(checkpoint step 0; run config {config.train.out_dir}/config.yaml)"
    )
    return 0


# ------------------------------------------------------------------------------------------ fit


def _add_fit(sub: argparse._SubParsersAction) -> None:
    try:
        from scaling_analysis import cli as fit_cli
    except ImportError:
        return
    p = sub.add_parser(
        "fit",
        help="fit a scaling law L(N, D) to training runs or a CSV",
        description="Fit L(N, D) = E + A/N^alpha + B/D^beta to the validation losses of runs "
        "(or a CSV), with bootstrap intervals, plots and a Markdown report.",
    )
    fit_cli.add_arguments(p)
    p.set_defaults(func=fit_cli.run)


# --------------------------------------------------------------------------------------- launch


def _add_launch(sub: argparse._SubParsersAction) -> None:
    from launch import cli as launch_cli

    p = sub.add_parser(
        "launch",
        help="start a job: local processes, or render SLURM / Kubernetes / TPU artifacts",
        description="Start trilm train on several processes (local) or render what SLURM, "
        "Kubernetes (JobSet) or Cloud TPU run. See docs/launch.md.",
    )
    launch_cli.add_arguments(p)
    p.set_defaults(func=launch_cli.run)


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trilm",
        description="Pretrain ternary language models (TriLMs) and their FloatLM twins in JAX.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_generate(sub)
    _add_fit(sub)
    _add_launch(sub)
    _add_export(sub)
    _add_import_hf(sub)
    return parser


OPTIONAL_MODULES = {
    "safetensors": "export",
    "gguf": "export",
    "ml_dtypes": "export",
    "scipy": "scaling",
    "matplotlib": "scaling",
    "nbformat": "scaling",
    "nbclient": "scaling",
    "torch": "hf",
    "transformers": "hf",
    "tensorflow_datasets": "tfds",
}
"""Top-level modules of pyproject.toml's optional extras, and the extra that installs each."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's warnings duplicate our errors
    from launch.distributed import LaunchError
    from scaling_analysis.points import ScalingDataError
    from trilm_jax.config import ConfigError
    from trilm_jax.data.corpus import DataError
    from trilm_jax.train.checkpoint import CheckpointError, RunDirectoryError

    try:
        return int(args.func(args) or 0)
    except (
        ScalingDataError,
        UserError,
        ConfigError,
        DataError,
        CheckpointError,
        RunDirectoryError,
        LaunchError,
    ) as err:
        print(f"trilm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        extra = OPTIONAL_MODULES.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"trilm {args.command}: error: needs the optional package {err.name!r}: "
            f"pip install -e '.[{extra}]' (or ./scripts/test.sh, which installs every extra)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"trilm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

import subprocess
import sys

import pytest

from trilm_jax.cli import build_parser, main


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return sub.format_help()


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("train", ["--config", "--resume", "--print-config", "--quiet", "KEY=VALUE"]),
        (
            "generate",
            ["--checkpoint", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--seed"],
        ),
    ],
)
def test_help_explains_every_option(command, options):
    text = _help(command)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, f"trilm {command}: {action.dest} has no help text"
    for option in options:
        assert option in text


def test_console_script_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "trilm_jax.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--resume" in out.stdout and "examples:" in out.stdout


def test_generate_from_checkpoint_is_deterministic_when_greedy(trained_run, capsys):
    run_dir, _, _ = trained_run
    args = [
        "generate",
        "--checkpoint",
        str(run_dir),
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main([*args[:2], str(run_dir / "checkpoints" / "16"), *args[3:]]) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("ROMEO:")


def test_generate_matches_full_forward_greedy(trained_run):
    import numpy as np

    from trilm_jax.inference.generate import freeze_weights, generate

    _, _, result = trained_run
    model = result.model
    prompt = np.array([72, 101, 108, 108, 111], np.int32)
    new = generate(freeze_weights(model), prompt, 6)
    seq = list(prompt)
    for _ in range(6):  # greedy decoding without a cache, with the training (latent) model
        logits, _ = model(np.array([seq]))
        seq.append(int(np.argmax(np.asarray(logits)[0, -1])))
    assert list(new) == seq[len(prompt) :]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--checkpoint", "/nonexistent/run"], "does not exist"),
        (["train", "model.n_heads=7"], "model.n_heads=7 must divide"),
        (["train", "--config", "/nonexistent.yaml"], "/nonexistent.yaml does not exist"),
    ],
)
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "checkpoints" / "3" / "meta").mkdir(parents=True)
    assert main(["generate", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoints/3" in err[0] and "unreadable checkpoint meta" in err[0]


def test_prompt_too_long_is_a_user_error(trained_run, capsys):
    run_dir, _, _ = trained_run
    assert main(["generate", "--checkpoint", str(run_dir), "--max-new-tokens", "500"]) == 2
    assert "exceeds the model's max_seq_len=64" in capsys.readouterr().err


def test_missing_optional_package_is_a_one_line_error(monkeypatch, capsys):
    """A command that needs an optional extra names the package and the extra to install."""
    import trilm_jax.cli as cli

    def missing(*_args):
        raise ModuleNotFoundError("No module named 'safetensors'", name="safetensors")

    monkeypatch.setattr(cli, "_load_packed_for_generate", missing)
    assert main(["generate", "--packed", "m.safetensors", "--weights", "float"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "needs the optional package 'safetensors': pip install -e '.[export]'" in err

    def other(*_args):
        raise ModuleNotFoundError("No module named 'nothere'", name="nothere")

    monkeypatch.setattr(cli, "_load_packed_for_generate", other)
    with pytest.raises(ModuleNotFoundError):  # not an extra of ours: a real bug, not hidden
        main(["generate", "--packed", "m.safetensors", "--weights", "float"])

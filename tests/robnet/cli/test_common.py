"""What both CLIs share (robnet.cli.common): flags, logging, the one-line error runner, output
checks and sample selection. Both tools are driven through it here, so they behave alike."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytest
import torch

from robnet.cli.common import (
    add_common_flags,
    add_data_flags,
    check_outputs,
    check_positive,
    error_line,
    main_entry,
    precision_record,
    run_command,
    setup_logging,
    take_samples,
)
from robnet.data.datasets import ArrayDataset, load_dataset


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tool")
    sub = p.add_subparsers(dest="command")
    for name in ("demo", "go"):
        s = sub.add_parser(name)
        add_common_flags(s, amp=name == "go")
    add_data_flags(sub.choices["go"], "digits", split=True, workers=True)
    return p


def _raise(exc: BaseException):
    def handler(args: argparse.Namespace) -> int:
        raise exc
    return handler


def test_flags_and_their_defaults() -> None:
    args = _parser().parse_args(["go"])
    assert (args.device, args.seed, args.quiet, args.debug, args.amp) == (None, 0, False, False, False)
    assert (args.data, args.data_dir, args.download, args.split, args.workers) == ("digits", None, False, "test", 4)
    assert _parser().parse_args(["go", "--amp"]).amp is True
    assert not hasattr(_parser().parse_args(["demo"]), "amp")  # --amp only where a command attacks


@pytest.mark.parametrize(("exc", "expected"), [
    (ValueError("one line"), "one line"),
    (ValueError("first\nsecond\n\n  third  "), "first; second; third"),
    (ValueError("a\nb\nc\nd\ne\nf"), "a; b; c; d; ... 2 more lines (--debug shows them)"),
    (ValueError(""), "ValueError"),
    (ValueError("x" * 500 + ". The end of the sentence."), "x" * 500 + ". The end of the sentence."),
])
def test_error_line_never_cuts_a_sentence(exc: BaseException, expected: str) -> None:
    """Before: messages were cut at 200 characters, mid-sentence."""
    assert error_line(exc) == expected


def test_run_command_one_line_exit_1_and_debug_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(command="go", debug=False)
    for exc in (ValueError("bad value\nsecond line"), TypeError("bad type"), FileNotFoundError("no such file"),
                OSError("disk full")):
        assert run_command("tool", args, {"go": _raise(exc)}) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"tool go: error: {error_line(exc)}")
    with pytest.raises(ValueError, match="bad value"):
        run_command("tool", argparse.Namespace(command="go", debug=True), {"go": _raise(ValueError("bad value"))})
    assert run_command("tool", args, {"go": _raise(KeyboardInterrupt())}) == 130
    assert capsys.readouterr().err == "tool go: interrupted\n"
    with pytest.raises(RuntimeError, match="a bug"):  # not a caller error: keeps its traceback
        run_command("tool", args, {"go": _raise(RuntimeError("a bug"))})
    assert run_command("tool", args, {"go": _raise(torch.OutOfMemoryError("CUDA out of memory."))}) == 1
    assert capsys.readouterr().err == "tool go: error: CUDA out of memory. Hint: lower --batch-size\n"
    assert run_command("tool", args, {"go": lambda a: 0}) == 0


def test_main_entry_prints_short_help_without_arguments_and_returns_usage_codes(
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[argparse.Namespace] = []
    commands = {"demo": lambda a: seen.append(a) or 0, "go": lambda a: 7}
    assert main_entry("tool", _parser(), commands, []) == 0
    assert seen == [] and "fspkit demo" in capsys.readouterr().out  # no command runs; the help names the demo
    assert main_entry("tool", _parser(), commands, ["go", "--seed", "3"]) == 7
    assert main_entry("tool", _parser(), commands, ["go", "--seed", "three"]) == 2
    assert "invalid int value: 'three'" in capsys.readouterr().err
    assert main_entry("tool", _parser(), commands, ["--help"]) == 0
    assert main_entry("tool", _parser(), {"demo": commands["demo"]}, ["go"]) == 2
    assert "tool: error: unknown command 'go'" in capsys.readouterr().err


def test_setup_logging_levels_and_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("robnet.some.module")
    setup_logging(quiet=True)
    log.info("hidden")
    log.warning("shown")
    assert capsys.readouterr().err == "shown\n"
    setup_logging()
    setup_logging()  # idempotent: one handler, one line per message
    log.info("info line")
    logging.getLogger("fspkit.x").info("fspkit too")
    assert capsys.readouterr().err == "info line\nfspkit too\n"
    setup_logging(debug=True)
    log.debug("detail")
    assert capsys.readouterr().err == "DEBUG robnet.some.module: detail\n"
    assert sum(type(h).__name__ == "_StderrHandler" for h in logging.getLogger("robnet").handlers) == 1
    setup_logging(quiet=True)
    assert sys.stderr is not None


def test_check_positive() -> None:
    check_positive("--n", None)
    check_positive("--n", 1)
    check_positive("--workers", 0, minimum=0)
    with pytest.raises(ValueError, match=r"^--subset must be >= 1, got 0$"):
        check_positive("--subset", 0)
    with pytest.raises(ValueError, match=r"^--workers must be >= 0, got -2$"):
        check_positive("--workers", -2, minimum=0)


def test_check_outputs(tmp_path: Path) -> None:
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"weights")
    check_outputs({"--json": str(tmp_path / "r.json"), "--csv": None}, inputs=[str(ckpt), None])
    with pytest.raises(ValueError, match=rf"^--json {tmp_path}/no/r\.json: folder {tmp_path}/no does not exist"):
        check_outputs({"--json": str(tmp_path / "no" / "r.json")})
    with pytest.raises(ValueError, match=rf"^--csv {tmp_path} is a folder: give a file name$"):
        check_outputs({"--csv": str(tmp_path)})
    with pytest.raises(ValueError, match=r"is the input file .* refusing to write over an input"):
        check_outputs({"--json": str(ckpt)}, inputs=[str(ckpt)])
    with pytest.raises(ValueError, match="is the input file"):  # another spelling of the same file
        check_outputs({"--json": str(tmp_path / "." / "m.pt")}, inputs=[str(ckpt)])
    with pytest.raises(ValueError, match=r"^--json and --csv both name .*: give each output its own file$"):
        check_outputs({"--json": str(tmp_path / "a"), "--csv": str(tmp_path / "." / "a")})
    assert ckpt.read_bytes() == b"weights"


def test_take_samples() -> None:
    data = load_dataset("digits", split="test")
    assert take_samples(data, None, flag="--n", what="x") is data
    first = take_samples(data, 5, flag="--n", what="x")
    assert isinstance(first, ArrayDataset) and torch.equal(first.labels, data.labels[:5])
    a = take_samples(data, 5, flag="--n", what="x", shuffle=True, seed=1)
    b = take_samples(data, 5, flag="--n", what="x", shuffle=True, seed=1)
    expected = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:5]
    assert torch.equal(a.labels, b.labels) and torch.equal(a.labels, data.labels[expected])
    streamed = take_samples(torch.utils.data.Subset(data, range(20)), 3, flag="--n", what="x")
    assert isinstance(streamed, torch.utils.data.Subset) and len(streamed) == 3
    with pytest.raises(ValueError, match=r"^--subset 361 is larger than the test split \(360 samples\)$"):
        take_samples(data, 361, flag="--subset", what="the test split")
    with pytest.raises(ValueError, match=r"^--n must be >= 1, got 0$"):
        take_samples(data, 0, flag="--n", what="x")


def test_precision_record() -> None:
    assert precision_record(False) == {"amp": False, "precision": "float32"}
    assert precision_record(True) == {"amp": True, "precision": "bfloat16"}

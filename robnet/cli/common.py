"""What the ``robnet`` and ``fspkit`` command lines share: flags, logging, the runner, input checks.

Both tools speak one language: one flag name per concept (:data:`FLAGS`), ``choices`` wherever
the set is closed, old spellings kept as hidden aliases. With no arguments they print a short help
that names ``fspkit demo``; a caller error prints one line, ``PROG COMMAND: error: MESSAGE``, and
exits 1 (``--debug`` re-raises it with its traceback); a usage error (argparse) exits 2; Ctrl-C
exits 130. Output paths are checked before
any compute (:func:`check_outputs`), and the model is checked against the data before any attack
(:func:`robnet.attacks.preflight.check_model_data`).

Only the CLIs import this module; it imports torch lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from robnet.data.datasets import DATASETS

__all__ = [
    "FLAGS",
    "Command",
    "add_alias",
    "add_common_flags",
    "add_config_flags",
    "add_data_flags",
    "add_model_flags",
    "add_procs_flags",
    "check_outputs",
    "check_positive",
    "error_line",
    "load_eval_data",
    "load_model",
    "main_entry",
    "precision_record",
    "run_command",
    "setup_logging",
    "take_samples",
]

Command = Callable[[argparse.Namespace], int]

# Above this many lines an error message is shortened to its first lines (whole lines, never cut
# mid-sentence) plus a pointer to --debug; e.g. torch's size-mismatch reports list hundreds.
_MAX_ERROR_LINES = 4
_LOGGERS = ("robnet", "fspkit")
# Exceptions a caller can cause (bad flags, files, data): one line, exit 1. Anything else is a bug
# and keeps its traceback.
_CALLER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


# ----------------------------------------------------------------------------- flags

#: One flag name per concept, in every subcommand of both tools (a test walks both parsers).
FLAGS: dict[str, str] = {
    "architecture": "--arch", "architecture keyword arguments": "--arch-kwargs", "device": "--device",
    "seed": "--seed", "output folder": "--out", "JSON output": "--json", "CSV output": "--csv", "dataset": "--data",
    "dataset folder": "--data-dir", "dataset split": "--split", "images evaluated": "--samples",
    "first training images": "--subset", "one attack": "--attack", "several attacks": "--attacks",
    "training attack steps": "--attack-steps", "attack radius": "--eps", "attack step": "--step-size",
    "batch": "--batch-size", "processes": "--procs", "threads per process": "--threads",
    "replace an existing run": "--overwrite", "continue a run": "--resume", "bf16 autocast": "--amp",
    "input normalization": "--normalize", "cells": "--cells", "no progress bars": "--quiet",
    "tracebacks": "--debug",
}
SHORT_HELP = """{prog}: {what}

Try first:  fspkit demo          the whole study on the bundled digits data, minutes on a CPU
            {prog} --help        every command;  {prog} COMMAND --help  one command's flags
"""


def plain(doc: str) -> str:
    """A docstring as ``--help`` shows it: reST roles and double backticks become plain text."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "").strip()


def add_alias(p: argparse.ArgumentParser | Any, flag: str, dest: str, **kwargs: Any) -> None:
    """An old spelling of a flag, kept working but hidden from ``--help`` (one release)."""
    p.add_argument(flag, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_procs_flags(p: argparse.ArgumentParser | Any) -> None:
    """``--procs`` (local processes) and ``--threads`` (intra-op threads per process)."""
    p.add_argument("--procs", type=int, default=None,
                   help="processes on this machine (default: one per CPU core, one per GPU); ignored under torchrun")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads per process (default 1 on the CPU: tiny networks gain nothing from more)")


def _flag_type(f: dataclasses.Field[Any]) -> tuple[Callable[[str], Any], bool]:
    """(argparse type, is_bool) of a config field; floats accept fractions like 8/255."""
    from robnet.attacks.spec import parse_fraction

    kind = str(f.type)
    if "bool" in kind:
        return str, True
    if "float" in kind:
        return parse_fraction, False
    return (int if "int" in kind else str), False


def add_config_flags(p: argparse.ArgumentParser | Any, cls: type, *, exclude: Sequence[str] = (),
                     prefix: str = "") -> list[str]:
    """One flag per field of the frozen config dataclass ``cls`` (``--warmup-epochs`` for
    ``warmup_epochs``), its type, choices and help taken from the field (``metadata["help"]``); the
    default is None ("not given"), so the config's own default applies. Returns the field names."""
    names = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        conv, is_bool = _flag_type(f)
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", f.name)
        if "(default:" not in help_text:  # a field's help may say its default in words
            help_text += f" (default: {default})"
        flag = "--" + (prefix + f.name).replace("_", "-")
        dest = prefix + f.name
        if is_bool:
            p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, dest=dest, type=conv, default=None, choices=f.metadata.get("choices"),
                           help=help_text)
        names.append(f.name)
    return names


def add_model_flags(p: argparse.ArgumentParser | Any) -> None:
    """How a command reads a model: ``CHECKPOINT``, ``--arch``, ``--arch-kwargs``, ``--normalize``,
    ``--unsafe-pickle`` and ``--allow-more-classes``."""
    p.add_argument("checkpoint", help="a robnet checkpoint, an official RobNets checkpoint, a state_dict (.pt, .pth, "
                   ".safetensors) or, with --unsafe-pickle, a whole pickled model")
    p.add_argument("--arch", default=None, help="architecture of a checkpoint that records none: a zoo name "
                   "(`robnet models`) or module:callable, your own factory (e.g. mymodels:build)")
    p.add_argument("--arch-kwargs", default=None,
                   help="JSON keyword arguments for --arch, e.g. '{\"num_classes\": 10}'")
    p.add_argument("--normalize", default=None, help="the model was trained on normalized inputs: cifar10, cifar100, "
                   "imagenet, svhn, or MEAN,STD per channel; the normalization goes inside the model, attacks stay "
                   "in [0, 1] pixel space")
    p.add_argument("--unsafe-pickle", action="store_true", help="load a whole pickled nn.Module: this RUNS the "
                   "file's code; only for files you trust")
    p.add_argument("--allow-more-classes", action="store_true",
                   help="accept a model with more outputs than the data's classes")


def add_common_flags(p: argparse.ArgumentParser, *, amp: bool = False) -> None:
    """``--device``, ``--seed``, ``--quiet``, ``--debug`` and, with ``amp=True``, the opt-in
    ``--amp`` (bf16 autocast during the attacks, off by default: it can mask gradients, docs/design.md §3)."""
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1, mps (default: cuda when available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random choice (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--debug", action="store_true", help="debug logging; show tracebacks")
    if amp:
        p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                       help="bf16 autocast during the attacks (default off: reported robust accuracies are "
                       "computed in float32; bf16 attacks can mask gradients and overstate robustness)")


def add_data_flags(p: argparse.ArgumentParser, default: str = "cifar10", *, split: bool = False,
                   workers: bool = False) -> None:
    """``--data``, ``--data-dir``, ``--download`` and optionally ``--split`` and ``--workers``."""
    p.add_argument("--data", default=default, choices=DATASETS, metavar="DATA",
                   help=f"{', '.join(DATASETS)} (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder "
                   "(for cifar10 the one containing cifar-10-batches-py/)")
    p.add_argument("--download", action="store_true", help="download the official archive if missing")
    if split:
        p.add_argument("--split", default="test", choices=("test", "train", "val"), metavar="SPLIT",
                       help="test, train or val (default: %(default)s)")
    if workers:
        p.add_argument("--workers", type=int, default=4, help="image-decoding workers for folder datasets")


def check_positive(flag: str, value: int | None, *, minimum: int = 1) -> None:
    """Refuse ``--flag N`` below ``minimum`` (``--subset 0`` selects nothing, ``--batch-size 0`` ...)."""
    if value is not None and value < minimum:
        raise ValueError(f"{flag} must be >= {minimum}, got {value}")


def check_outputs(outputs: Mapping[str, str | None], *, inputs: Sequence[str | None] = ()) -> None:
    """Check every output path before any compute, via :func:`robnet.io.results.check_output_path`.

    Args:
        outputs: flag -> path (``None``: not requested), e.g. ``{"--json": args.json}``.
        inputs: files the command reads (checkpoints): an output may never be one of them.

    Raises:
        ValueError: a missing folder, a folder given as the file, an unwritable path, an input
            file, or two flags naming the same file.
    """
    from pathlib import Path

    from robnet.io.results import check_output_path

    given = [(flag, path) for flag, path in outputs.items() if path is not None]
    real_inputs = [s for s in inputs if s is not None]
    for flag, path in given:
        check_output_path(path, inputs=real_inputs, what=flag)
    seen: dict[Path, str] = {}
    for flag, path in given:
        key = Path(path).resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {flag} both name {path}: give each output its own file")
        seen[key] = flag


_UNSET: Any = object()


def load_model(args: argparse.Namespace, path: str, *, arch: Any = _UNSET) -> tuple[Any, dict[str, Any]]:
    """The model at ``path`` as the model flags (:func:`add_model_flags`) ask for, and what was loaded
    (plain data for the result file; :func:`robnet.io.load_model`). ``arch`` overrides ``--arch`` (a
    transfer source's own, whose other flags are not used)."""
    from robnet.io.external import parse_arch_kwargs
    from robnet.io.models import load_model as load

    if arch is not _UNSET:
        return load(path, arch=arch)
    return load(path, arch=args.arch, arch_kwargs=parse_arch_kwargs(args.arch_kwargs), normalize=args.normalize,
                allow_pickle=args.unsafe_pickle)


def load_eval_data(args: argparse.Namespace) -> Any:
    """``args.data``/``args.split`` from ``args.data_dir``: in memory, or a streamed folder set."""
    from robnet.data.datasets import load_dataset

    return load_dataset(args.data, args.data_dir, args.split, download=getattr(args, "download", False))


def take_samples(data: Any, count: int | None, *, flag: str, what: str, shuffle: bool = False,
                 seed: int = 0) -> Any:
    """The first ``count`` samples of ``data`` (all with ``None``), or a seeded random subset.

    Args:
        data: an :class:`~robnet.data.datasets.ArrayDataset` or a folder dataset.
        count: number of samples, or ``None``.
        flag: the flag that gave ``count``, for messages (``--subset``, ``--n``).
        what: how messages name the split (e.g. "the test split").
        shuffle: draw the subset with ``torch.randperm`` seeded by ``seed``.
        seed: the subset's seed.

    Raises:
        ValueError: ``count`` < 1 or larger than ``data``.
    """
    import torch

    from robnet.data.datasets import ArrayDataset

    check_positive(flag, count)
    if count is None:
        return data
    if count > len(data):
        raise ValueError(f"{flag} {count} is larger than {what} ({len(data)} samples)")
    if shuffle:
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    else:
        idx = torch.arange(count)
    return data.subset(idx) if isinstance(data, ArrayDataset) else torch.utils.data.Subset(data, idx.tolist())


def precision_record(amp: bool) -> dict[str, Any]:
    """How a result's attacks were computed: ``{"amp": bool, "precision": "float32" | "bfloat16"}``."""
    return {"amp": bool(amp), "precision": "bfloat16" if amp else "float32"}


# ----------------------------------------------------------------------------- logging


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (not the one at set-up time, which tests replace)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(*, quiet: bool = False, debug: bool = False) -> None:
    """Route the ``robnet`` and ``fspkit`` loggers to stderr: INFO, WARNING with ``--quiet``,
    DEBUG with ``--debug``. Idempotent: calling it again replaces the handler it added."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(h)
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(fmt))
        logger.addHandler(handler)
        logger.setLevel(level)


# ----------------------------------------------------------------------------- running


def error_line(exc: BaseException) -> str:
    """``exc``'s message on one line: whitespace runs collapsed, multi-line messages joined with
    "; ", and past a few lines shortened to whole lines plus a pointer to ``--debug``."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    lines = [line for line in lines if line] or [type(exc).__name__]
    if len(lines) > _MAX_ERROR_LINES:
        rest = len(lines) - _MAX_ERROR_LINES
        lines = [*lines[:_MAX_ERROR_LINES], f"... {rest} more line{'s' if rest > 1 else ''} (--debug shows them)"]
    return "; ".join(lines)


def run_command(prog: str, args: argparse.Namespace, commands: Mapping[str, Command]) -> int:
    """Run ``commands[args.command](args)``; a caller error (ValueError, TypeError, OSError:
    missing files, bad settings, mismatched data) becomes one line on stderr and exit 1, Ctrl-C
    exit 130. ``--debug`` re-raises with the traceback."""
    handler = commands[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except _CALLER_ERRORS as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{prog} {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # Out of memory is a caller's choice of sizes, not a bug; other RuntimeErrors keep their traceback.
        if type(exc).__name__ != "OutOfMemoryError" or getattr(args, "debug", False):
            raise
        print(f"{prog} {args.command}: error: {error_line(exc)} Hint: lower --batch-size", file=sys.stderr)
        return 1


def main_entry(prog: str, parser: argparse.ArgumentParser, commands: Mapping[str, Command],
               argv: Sequence[str] | None) -> int:
    """Parse ``argv``, set up logging, run the command; no arguments print a short help (exit 0).

    Returns the exit status: argparse's 2 for a usage error (0 for ``--help``), else
    :func:`run_command`'s.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        what = plain(parser.description or prog).splitlines()[0].removeprefix(f"{prog}:").strip()
        print(SHORT_HELP.format(prog=prog, what=what))
        parser.print_usage()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: usage error (2) or --help (0); main(argv) returns, never exits
        return stop.code if isinstance(stop.code, int) else 2
    if args.command not in commands:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: unknown command {args.command!r}", file=sys.stderr)
        return 2
    args.argv = argv  # the invocation, as results record it
    setup_logging(quiet=getattr(args, "quiet", False), debug=getattr(args, "debug", False))
    return run_command(prog, args, commands)

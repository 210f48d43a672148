"""One command-line language for both tools: the same concept has the same flag name in every
subcommand of ``robnet`` and ``fspkit`` (robnet.cli.common.FLAGS), closed sets are ``choices``, the
search's stages are subcommands, old spellings are hidden aliases, and a bare call prints help."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from fspkit.cli import main as fspkit_main
from fspkit.cli.app import build_parser as fspkit_parser
from robnet.cli import main as robnet_main
from robnet.cli.app import build_parser as robnet_parser
from robnet.cli.common import FLAGS

# concept -> the destinations its flag may store to (what identifies the concept in a parser)
DESTS = {
    "architecture": {"arch"}, "architecture keyword arguments": {"arch_kwargs"}, "device": {"device"},
    "seed": {"seed"}, "output folder": {"out"}, "JSON output": {"json"}, "CSV output": {"csv"}, "dataset": {"data"},
    "dataset folder": {"data_dir"}, "dataset split": {"split"}, "images evaluated": {"samples"},
    "first training images": {"subset"}, "one attack": {"attack"}, "several attacks": {"attacks"},
    "training attack steps": {"attack_steps"}, "attack radius": {"eps"}, "attack step": {"step_size"},
    "batch": {"batch_size"}, "processes": {"procs"}, "threads per process": {"threads"},
    "replace an existing run": {"overwrite"}, "continue a run": {"resume"}, "bf16 autocast": {"amp"},
    "input normalization": {"normalize"}, "cells": {"cells"}, "no progress bars": {"quiet"}, "tracebacks": {"debug"},
}
OLD = {"--n", "--eval-samples", "--eval-attack", "--model", "--steps"}  # the dialects the language replaced


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(name: str, parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from walk(f"{name} {sub}", child)

    yield from walk("robnet", robnet_parser())
    yield from walk("fspkit", fspkit_parser())


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def test_every_concept_has_one_flag_name_everywhere():
    assert set(DESTS) == set(FLAGS)
    wrong = []
    for name, parser in _parsers():
        for action in _visible(parser):
            for concept, dests in DESTS.items():
                if action.dest in dests and FLAGS[concept] not in action.option_strings:
                    wrong.append(f"{name}: {action.option_strings} for {concept} (expected {FLAGS[concept]})")
    assert wrong == []


def test_old_spellings_are_hidden_aliases_only():
    shown = {(name, s) for name, p in _parsers() for a in _visible(p) for s in a.option_strings if s in OLD}
    assert shown == set()
    hidden = {s for _, p in _parsers() for a in p._actions if a.help == argparse.SUPPRESS for s in a.option_strings}
    assert hidden >= OLD  # still accepted for one release


def test_the_walk_covers_every_subcommand():
    names = {name for name, _ in _parsers()}
    assert {"robnet demo", "robnet train", "robnet eval", "robnet search all", "robnet search report",
            "fspkit demo", "fspkit score", "fspkit search finetune", "fspkit stats", "fspkit plot"} <= names


CLOSED = ("--preset", "--data", "--split", "--finetune-schedule", "--format", "--attack-bn")


def test_closed_sets_have_choices():
    seen = {(name, flag): bool(a.choices) for name, p in _parsers() for a in p._actions for flag in a.option_strings
            if flag in CLOSED}
    assert {f for _, f in seen} == set(CLOSED)  # each closed flag appears somewhere
    assert [k for k, has in seen.items() if not has] == []  # and has choices wherever it appears


@pytest.mark.parametrize("main", [robnet_main, fspkit_main])
def test_a_bare_call_prints_help_naming_the_demo_and_exits_0(main, capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "fspkit demo" in out and "usage:" in out


@pytest.mark.parametrize(("argv", "code"), [
    (["search", "all", "--preset", "nope"], 2), (["search", "nope"], 2), (["train", "--lr", "x", "--out", "o"], 2),
])
def test_usage_errors_exit_2(argv, code):
    assert robnet_main(argv) == code


def test_training_flags_come_from_the_config_fields():
    import dataclasses

    from robnet.train import TrainConfig

    train = dict(_parsers())["robnet train"]
    flags = {s for a in train._actions for s in a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        if f.name != "seed":
            assert "--" + f.name.replace("_", "-") in flags, f.name
            action = next(a for a in train._actions if a.dest == f.name)
            assert f.metadata["help"] in action.help

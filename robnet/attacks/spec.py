"""The attack language both CLIs share: ``pgd20``, ``pgd20:eps=4/255,step_size=1/255``, ``autoattack``, ``none``.

A spec string names an attack with the paper's settings (docs/design.md §3) and optionally
overrides any :class:`~robnet.attacks.config.AttackConfig` field after a colon, each at most once.
:func:`parse_attack` turns a spec into a frozen config, :func:`format_attack` turns a config back
into its shortest spec (``parse_attack(format_attack(c)) == c``), :func:`normalize_spec` gives the
one normal form of a spec (two specs that say the same thing normalize to the same string), and
:func:`attack_record` is the one schema in which ``robnet eval`` and ``fspkit score`` record an
attack (``asdict(config)`` plus its spec). Binding a config to its attack function is
:func:`robnet.attacks.config.make_attack`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any

from robnet.attacks.config import AttackConfig

__all__ = [
    "attack_record",
    "format_attack",
    "normalize_spec",
    "parse_attack",
    "parse_attack_list",
    "parse_fraction",
]


def parse_fraction(text: str) -> float:
    """Parse a number written as a decimal or a fraction: "8/255", "0.03137", "8/255.", "inf".

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: anything else, with a hint.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_fraction: expected a string, got {type(text).__name__}")
    hint = "Hint: write a decimal or a fraction, e.g. '8/255' or '0.03137'"
    parts = [p.strip() for p in text.strip().split("/")]
    try:
        if len(parts) == 1:
            value = float(parts[0])
        elif len(parts) == 2:
            num, den = float(parts[0]), float(parts[1])
            if den == 0.0:
                raise ValueError(f"cannot parse {text!r}: division by zero. {hint}")
            value = num / den
        else:
            raise ValueError(f"cannot parse {text!r} as a number: more than one '/'. {hint}")
    except ValueError as err:
        if str(err).startswith("cannot parse"):
            raise
        raise ValueError(f"cannot parse {text!r} as a number. {hint}") from None
    if math.isnan(value):
        raise ValueError(f"cannot parse {text!r}: not a number. {hint}")
    return value


_SPEC_RE = re.compile(r"^(?:(?P<clean>clean|none)|(?P<fgsm>fgsm)|pgd(?P<pgd>\d*)(?P<l2>_l2)?"
                      r"|mifgsm(?P<mi>\d*)|(?P<df>deepfool)(?P<dfl2>_l2)?"
                      r"|(?P<apgd>apgd)_?(?P<apgdloss>ce|t|dlr)?(?P<apgdl2>_l2)?|(?P<fab>fab_?t)(?P<fabl2>_l2)?"
                      r"|(?P<square>square)|(?P<aa>autoattack))$")
_SPEC_HINT = ("expected clean, fgsm, pgd<N> (e.g. pgd20, pgd100, pgd7), pgd<N>_l2, mifgsm, deepfool, "
              "deepfool_l2, apgd-ce, apgd-t, apgd-dlr (each also _l2), fab-t, fab-t_l2, square, autoattack "
              "or none (= clean), optionally followed by ':key=value,...' (e.g. 'pgd20:eps=4/255,random_start=false')")
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(AttackConfig) if f.name != "name"}
_KNOWN_HEADS = ["clean", "none", "fgsm", "pgd20", "pgd100", "pgd7", "pgd20_l2", "mifgsm", "deepfool", "deepfool_l2",
                "apgd-ce", "apgd-t", "apgd-dlr", "fab-t", "square", "autoattack"]
# Spec head <-> APGD loss.
_APGD_HEADS = {"ce": "ce", "t": "dlr-targeted", "dlr": "dlr"}
_APGD_LOSS_HEADS = {loss: f"apgd-{head}" for head, loss in _APGD_HEADS.items()}


def _autoattack_base(m: re.Match[str]) -> dict[str, object] | None:
    """Settings of the AutoAttack family (Croce & Hein 2020; docs/design.md §3), or None for another head."""
    adaptive: dict[str, object] = {"step_size": 0.0}  # these attacks size their own steps
    if m["apgd"]:
        l2 = {"norm": "2", "eps": 0.5} if m["apgdl2"] else {}
        return {"name": "apgd", "loss": _APGD_HEADS[m["apgdloss"] or "ce"], "steps": 100, **adaptive, **l2}
    if m["fab"]:
        l2 = {"norm": "2", "eps": 0.5} if m["fabl2"] else {}
        return {"name": "fab_t", "steps": 100, "random_start": False, **adaptive, **l2}
    if m["square"]:
        return {"name": "square", "steps": 0, **adaptive}
    if m["aa"]:
        return {"name": "autoattack", "steps": 100, **adaptive}
    return None


def _base_config(head: str, spec: str) -> tuple[dict[str, object], bool]:
    """Paper settings (docs/design.md §3) for a spec head; also whether step_size follows eps/steps."""
    m = _SPEC_RE.match(head.replace("-", "").replace(" ", ""))
    if m is None:
        close = difflib.get_close_matches(head, _KNOWN_HEADS, n=2)
        did = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"parse_attack: unknown attack {spec!r}.{did} {_SPEC_HINT}")
    family = _autoattack_base(m)
    if family is not None:
        return family, False
    if m["clean"]:
        return {"name": "none", "eps": 0.0, "step_size": 0.0, "steps": 0, "random_start": False}, False
    if m["fgsm"]:
        return {"name": "fgsm", "step_size": 8 / 255, "steps": 1, "random_start": False}, True
    if m["df"]:
        if m["dfl2"]:
            return {"name": "deepfool", "steps": 50, "norm": "2", "eps": 0.5, "random_start": False}, False
        return {"name": "deepfool", "steps": 50, "random_start": False}, False
    if m["mi"] is not None:
        return {"name": "mifgsm", "steps": int(m["mi"] or 20), "random_start": False}, False
    steps = int(m["pgd"] or 20)
    if m["l2"]:
        # Madry et al.'s step rule for L2, 2.5 * eps / steps, at the usual CIFAR L2 radius 0.5.
        step = 2.5 * 0.5 / max(steps, 1)
        return {"name": "pgd_l2", "norm": "2", "eps": 0.5, "steps": steps, "step_size": step}, True
    return {"name": "pgd", "steps": steps}, False


def parse_attack(spec: str) -> AttackConfig:
    """Build an :class:`AttackConfig` from a CLI string with the paper's settings (docs/design.md §3).

    ``clean`` or ``none`` (no attack), ``fgsm`` (one step of eps = 8/255), ``pgd<N>`` (N steps of
    2/255, eps 8/255, random start; ``pgd`` = ``pgd20``), ``pgd<N>_l2`` (eps 0.5, step
    2.5 * eps / N), ``mifgsm`` (20 steps of 2/255, decay 1.0, no random start), ``deepfool``
    (L-inf, 50 steps, overshoot 0.02, 10 candidates, projected into eps 8/255), ``deepfool_l2``
    (projected into L2 eps 0.5). AutoAttack and its parts (Croce & Hein 2020), eps 8/255 (L2:
    0.5): ``apgd-ce`` (also ``apgd_ce``, ``apgd``; 100 steps), ``apgd-t`` (targeted DLR, 9 target
    classes), ``apgd-dlr``, ``fab-t`` (100 steps, 9 targets), ``square`` (5000 queries, p_init
    0.8), ``autoattack`` (all four, L-inf); ``_l2`` after apgd-*/fab-t gives the L2 version. Any
    field can be overridden after a colon, each at most once: ``pgd20:eps=4/255,step_size=1/255``,
    ``autoattack:eps=4/255``. For fgsm and pgd_l2 the step size follows an overridden eps (and
    steps) unless given.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: unknown attack, unknown key, a key given twice, a value that does not parse,
            invalid settings.
    """
    if not isinstance(spec, str):
        raise TypeError(f"parse_attack: expected a string, got {type(spec).__name__}")
    head, _, tail = spec.strip().lower().partition(":")
    base, step_follows = _base_config(head.strip(), spec)
    overrides: dict[str, object] = {}
    for item in filter(None, (t.strip() for t in tail.split(","))):
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not raw:
            raise ValueError(f"parse_attack: override {item!r} in {spec!r} is not key=value. {_SPEC_HINT}")
        if key not in _FIELD_TYPES:
            close = difflib.get_close_matches(key, list(_FIELD_TYPES), n=1)
            did = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"parse_attack: unknown setting {key!r} in {spec!r}.{did} "
                             f"Settings: {', '.join(_FIELD_TYPES)}")
        if key in overrides:
            raise ValueError(f"parse_attack: {spec!r} sets {key!r} twice; a spec says each setting once. "
                             f"Hint: keep one {key}=...")
        overrides[key] = _parse_value(key, raw, spec)
    fields = {**base, **overrides}
    if step_follows and "step_size" not in overrides and ("eps" in overrides or "steps" in overrides):
        eps = float(fields["eps"])  # type: ignore[arg-type]
        steps = int(fields["steps"])  # type: ignore[call-overload]
        fields["step_size"] = eps if fields["name"] == "fgsm" else 2.5 * eps / max(steps, 1)
    return AttackConfig(**fields)  # type: ignore[arg-type]


def parse_attack_list(text: str) -> list[tuple[str, AttackConfig]]:
    """Parse a comma-separated list of specs, e.g. ``"clean,fgsm,pgd20:eps=4/255,step_size=1/255"``.

    An item of the form ``key=value`` continues the previous spec's overrides, so a spec with
    several overrides keeps its commas. Returns ``(spec, config)`` pairs in order; the spec is the
    text as given (whitespace trimmed), used as the result's name.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: an empty list or an empty item (``","``, ``"pgd20,,fgsm"``), a spec given twice,
            or any :func:`parse_attack` error.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_attack_list: expected a string, got {type(text).__name__}")
    hint = "Hint: e.g. --attacks clean,fgsm,pgd20 or --attacks 'pgd20:eps=4/255,step_size=1/255'"
    specs: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            raise ValueError(f"attack list {text!r} has an empty item. {hint}")
        continues = "=" in item and ":" not in item
        if continues and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    pairs = [(spec, parse_attack(spec)) for spec in specs]
    seen: set[str] = set()
    for spec, _ in pairs:
        if spec in seen:
            raise ValueError(f"attack list {text!r} names {spec!r} twice; each result needs its own name. {hint}")
        seen.add(spec)
    return pairs


def _parse_value(key: str, raw: str, spec: str) -> object:
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if raw not in table:
            raise ValueError(f"parse_attack: {key}={raw!r} in {spec!r} is not a boolean. Hint: true or false")
        return table[raw]
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"parse_attack: {key}={raw!r} in {spec!r} is not an integer") from None
    if kind == "str":
        return raw
    return parse_fraction(raw)


def format_attack(cfg: AttackConfig) -> str:
    """The shortest :func:`parse_attack` spec for ``cfg``: ``parse_attack(format_attack(c)) == c``."""
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"format_attack: expected an AttackConfig, got {type(cfg).__name__}")
    if cfg.name == "none":
        head = "clean"
    elif cfg.name in ("pgd", "pgd_l2"):
        head = f"pgd{cfg.steps}" + ("_l2" if cfg.name == "pgd_l2" else "")
    elif cfg.name == "mifgsm":
        head = f"mifgsm{cfg.steps}"
    elif cfg.name == "deepfool":
        head = "deepfool_l2" if cfg.norm == "2" else "deepfool"
    elif cfg.name in ("apgd", "fab_t"):
        head = (_APGD_LOSS_HEADS[cfg.loss] if cfg.name == "apgd" else "fab-t") + ("_l2" if cfg.norm == "2" else "")
    else:
        head = cfg.name
    base = parse_attack(head)
    # Write eps and steps before step_size, so that a step size that follows them is not recomputed.
    diffs = [f"{f}={_format_value(getattr(cfg, f))}" for f in _FIELD_TYPES
             if getattr(cfg, f) != getattr(base, f)]
    follows = cfg.name in ("fgsm", "pgd_l2")
    if follows and any(d.startswith(("eps=", "steps=")) for d in diffs) and not any(
            d.startswith("step_size=") for d in diffs):
        diffs.append(f"step_size={_format_value(cfg.step_size)}")
    return head + (":" + ",".join(diffs) if diffs else "")


def normalize_spec(spec: str) -> str:
    """The normal form of a spec: ``format_attack(parse_attack(spec))``.

    Two specs that configure the same attack normalize to the same string, however they spell
    it: ``normalize_spec("pgd7:eps=1/10,step_size=1/40") == normalize_spec("PGD-7:step_size=0.025,eps=0.1")
    == "pgd7:eps=0.1,step_size=0.025"``, and a spec equal to the defaults normalizes to its head
    (``"pgd20:steps=20"`` -> ``"pgd20"``). Fractions compare as the floats they evaluate to.

    Raises:
        TypeError, ValueError: as :func:`parse_attack`.
    """
    return format_attack(parse_attack(spec))


def _format_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def attack_record(cfg: AttackConfig) -> dict[str, Any]:
    """The attack schema of every results record: ``asdict(cfg)`` plus ``"spec"``, its canonical
    spec string (:func:`format_attack`), so a record names the attack and can re-create it."""
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"attack_record: expected an AttackConfig, got {type(cfg).__name__}")
    return {**dataclasses.asdict(cfg), "spec": format_attack(cfg)}

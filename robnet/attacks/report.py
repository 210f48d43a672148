"""What an evaluation returns: one :class:`AttackResult` per attack, gathered in an :class:`EvalReport`.

Each accuracy comes with its 95% Wilson score interval (:func:`wilson_interval`) and its n; with
no samples, accuracy and interval are null with the reason, so the record stays strict JSON. The
report's JSON record opens with the provenance block of :func:`robnet.io.results.provenance`;
:meth:`EvalReport.table` is the paper's Table 1 row (docs/design.md §3), with AutoAttack's
per-attack breakdown below it. :func:`robnet.attacks.evaluation.evaluate` fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robnet.io.results import provenance

__all__ = ["AttackResult", "EvalReport", "wilson_interval"]


def wilson_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (default 95%) of a binomial proportion ``correct / n``, as scipy
    computes it (``binomtest(...).proportion_ci(method="wilson")``); ``(0, 1)`` for ``n = 0``."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass
class AttackResult:
    """One column of the table: an attack's correct count over ``n`` samples.

    ``config`` is the attack as recorded (:func:`robnet.attacks.spec.attack_record`). For
    AutoAttack, ``breakdown`` holds the correct counts before any attack ("clean") and after each
    of its attacks (cumulative, in order), and ``breakdown_seconds`` their times; ``None`` for the
    other attacks and for transfer evaluations (where AutoAttack's own flags describe the source).
    """

    name: str
    config: dict[str, Any]
    correct: int
    n: int
    seconds: float
    breakdown: dict[str, int] | None = None
    breakdown_seconds: dict[str, float] | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON data: with no samples, accuracy and interval are null with the reason."""
        out: dict[str, Any] = {"name": self.name, "accuracy": None, "ci95": None, "correct": self.correct,
                               "n": self.n, "seconds": self.seconds, "attack": self.config}
        if self.n:
            out["accuracy"], out["ci95"] = self.accuracy, list(self.ci95)
        else:
            out["accuracy_missing"] = "no samples were evaluated"
        if self.breakdown is not None:
            out["autoattack"] = self._breakdown_dict()
        return out

    def _breakdown_dict(self) -> dict[str, Any]:
        """AutoAttack's stages: correct count, accuracy and interval after each, and what each fooled."""
        stages, before = [], None
        times = self.breakdown_seconds or {}
        for stage, correct in (self.breakdown or {}).items():
            row: dict[str, Any] = {"after": stage, "correct": correct, "accuracy": None, "ci95": None}
            if self.n:
                row["accuracy"], row["ci95"] = correct / self.n, list(wilson_interval(correct, self.n))
            if before is not None:
                row["fooled"], row["seconds"] = before - correct, times.get(stage, 0.0)
            stages.append(row)
            before = correct
        return {"n": self.n, "stages": stages, "robust": before}


@dataclass
class EvalReport:
    """The result of :func:`evaluate`; ``to_dict`` is the JSON record (provenance block first)."""

    results: list[AttackResult]
    warnings: list[str] = field(default_factory=list)
    n: int = 0
    seed: int = 0
    device: str = "cpu"
    transfer_from: str | None = None
    amp: bool = False
    masking: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, name: str) -> float:
        for r in self.results:
            if r.name == name:
                return r.accuracy
        raise KeyError(f"no result named {name!r}; have {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        """Provenance (versions, device, seed, settings), precision, results, warnings, extras."""
        return {**provenance(seed=self.seed, device=self.device, settings=self.settings), "n": self.n,
                "amp": self.amp, "precision": "bfloat16" if self.amp else "float32",
                "transfer_from": self.transfer_from, "results": [r.to_dict() for r in self.results],
                "masking_checks": self.masking, "warnings": self.warnings, **self.extra}

    def table(self) -> str:
        """A Table-1 style row: one column per attack, accuracy in percent with its 95% interval.

        Each AutoAttack result adds a line with its breakdown: accuracy (%) before any attack
        and after each of its attacks.
        """
        names = [r.name for r in self.results]
        widths = [max(len(n), 19) for n in names]
        head = "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
        cells = []
        for r, w in zip(self.results, widths, strict=True):
            lo, hi = r.ci95
            cells.append(f"{100 * r.accuracy:6.2f} [{100 * lo:5.1f},{100 * hi:5.1f}]".rjust(w))
        lines = [head, "  ".join(cells)]
        for r in self.results:
            if r.breakdown is not None and r.n:
                steps = " -> ".join(f"{stage} {100 * c / r.n:.2f}" for stage, c in r.breakdown.items())
                lines.append(f"{r.name} breakdown (accuracy %): {steps}")
        return "\n".join(lines)

"""Finding #1's classifier: do the bits of robust architectures carry positive weight?

The paper fits a linear classifier to the 0/1 bit vectors of the top-300 and bottom-300 of 1000
architectures by PGD accuracy and finds almost all weights positive. Here (docs/study.md):

* the weights are counted separately for identity bits (free: no parameters) and conv bits (each
  adds a sep-conv's parameters), and each positive share gets a permutation p-value: the labels are
  shuffled, the classifier refitted, and the share recomputed;
* the capacity-controlled version takes the top and bottom fraction *within* each stratum of equal
  conv count and shuffles labels within strata, so both groups have the same conv counts and a
  positive identity-bit share means "more connections at the same capacity";
* the accuracy is that of repeated stratified cross-validation (mean and spread over >= 20 splits);
* the t-SNE of the bit vectors is drawn only from ``TSNE_MIN_POINTS`` points on (a 2-D embedding of a
  few dozen points shows nothing reliable), on at most ``TSNE_MAX_POINTS`` of them (a random subset,
  recorded), and the classifier itself on at most ``CLASSIFIER_MAX_POINTS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fspkit.stats import resampling as rs
from fspkit.stats.core import RngLike, _generator, _seed, _vector
from robnet.search import records as R

__all__ = ["BITS_PER_CELL", "BitShare", "Finding1", "bit_names", "finding1"]

BITS_PER_CELL = 28
TSNE_MIN_POINTS = 100
TSNE_MAX_POINTS = 1000
CLASSIFIER_MAX_POINTS = 2000
CV_SPLITS = 20
N_PERM_FIT = 199  # label permutations (each refits the classifier)
_SOURCES = ("s0", "s1", "f1", "f2", "f3")
# Edge order of robnet.models.genotype: f1 <- s0,s1 | f2 <- s0,s1,f1 | f3 <- ... | f4 <- ...
_EDGES = tuple((src, node) for node in range(4) for src in range(node + 2))


def bit_names(n_bits: int) -> tuple[str, ...]:
    """Name of every genotype bit, ``e4:f1->f2:id`` / ``e4:f1->f2:conv`` (identity bit first, as in
    ``robnet.models.genotype``); with more than one cell (cell-free) prefixed by the cell, ``c3:e4:f1->f2:conv``.

    Raises:
        ValueError: ``n_bits`` is not a positive multiple of 28.
    """
    if n_bits <= 0 or n_bits % BITS_PER_CELL:
        raise ValueError(f"bits: expected 28 bits per cell (a positive multiple of 28), got {n_bits} per candidate")
    cells = n_bits // BITS_PER_CELL
    edge = [f"e{i}:{_SOURCES[src]}->f{node + 1}" for i, (src, node) in enumerate(_EDGES)]
    names = [f"{e}:{op}" for e in edge for op in ("id", "conv")]
    if cells == 1:
        return tuple(names)
    return tuple(f"c{c}:{name}" for c in range(cells) for name in names)


@dataclass(frozen=True, kw_only=True)
class BitShare:
    """The signs of the weights on one kind of bit (``identity``, ``conv`` or ``all``).

    Attributes:
        n_positive, n_negative: weights above / below zero among the bits of this kind that vary.
        share: ``n_positive / (n_positive + n_negative)`` (NaN when none varies).
        pvalue: two-sided permutation p-value of the share (labels shuffled, classifier refitted).
        null_median: the median share under the permutations.
    """

    kind: str
    n_positive: int
    n_negative: int
    share: float
    pvalue: float
    null_median: float


@dataclass(frozen=True, kw_only=True, eq=False)
class Finding1:
    """Top vs bottom architectures by PGD accuracy and the linear classifier between them.

    Attributes:
        n: candidates; k: size of each group (the sum over strata when ``stratified``).
        top_index, bottom_index: indices (into the inputs) of the robust and non-robust groups.
        top_min_pgd, bottom_max_pgd: the PGD accuracy at each group's edge.
        feature_names, weights, intercept: the classifier's weight per bit (0 for a constant bit).
        n_positive, n_negative, n_constant, positive_share: over all varying bits.
        shares: :class:`BitShare` of the identity bits, the conv bits and all bits.
        n_perm, min_pvalue: label permutations, and the smallest p-value the sample allows
            (``2 / distinct labellings``).
        cv_accuracy, cv_std, cv_splits: repeated stratified cross-validation (chance 0.5).
        stratified, strata: groups taken within this many strata of equal capacity.
        points, subsampled: points the classifier was fitted on, and whether they are a random subset
            of the 2k (at most ``CLASSIFIER_MAX_POINTS``).
        embedding, embedding_index, embedding_labels: t-SNE of the bits (rows: indices into the inputs,
            1 = robust), None with ``tsne_note`` saying why when not computed.
    """

    n: int
    k: int
    top_index: np.ndarray
    bottom_index: np.ndarray
    top_min_pgd: float
    bottom_max_pgd: float
    feature_names: tuple[str, ...]
    weights: np.ndarray
    intercept: float
    n_positive: int
    n_negative: int
    n_constant: int
    positive_share: float
    shares: tuple[BitShare, ...]
    n_perm: int
    min_pvalue: float
    cv_accuracy: float
    cv_std: float
    cv_splits: int
    stratified: bool
    strata: int | None
    points: int
    subsampled: bool
    embedding: np.ndarray | None
    embedding_index: np.ndarray | None
    embedding_labels: np.ndarray | None
    perplexity: float | None
    tsne_note: str
    C: float

    def share(self, kind: str) -> BitShare:
        """The :class:`BitShare` of ``identity``, ``conv`` or ``all`` bits."""
        return next(s for s in self.shares if s.kind == kind)


def _bits_matrix(bits: Any) -> np.ndarray:
    try:
        arr = np.asarray(bits, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"bits: expected an (n, 28 * cells) array of 0/1, got {type(bits).__name__} ({e})") from e
    if arr.ndim != 2:
        raise ValueError(f"bits: expected an (n, 28 * cells) array of 0/1, got shape {arr.shape}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("bits: every entry must be 0 or 1 (genotype bit vectors, Genotype.bits())")
    bit_names(arr.shape[1])
    return arr


def _groups(pgd: np.ndarray, keys: np.ndarray | None, k: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(top, bottom) index arrays per stratum (one stratum without ``keys``), ties keeping input order."""
    n = len(pgd)
    if keys is None:
        k = min(n // 2, max(2, round(0.3 * n))) if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n // 2:
            raise ValueError(f"k: expected an int in 2..{n // 2} (each group needs 2 candidates and they may not "
                             f"overlap), got {k!r} for n = {n}")
        order = np.argsort(-pgd, kind="stable")
        return [order[:k]], [order[n - k:][::-1]]
    tops, bottoms = [], []
    for key in np.unique(keys[np.isfinite(keys)]):
        idx = np.flatnonzero(keys == key)
        ks = min(len(idx) // 2, round(0.3 * len(idx)))
        if ks >= 1:
            order = idx[np.argsort(-pgd[idx], kind="stable")]
            tops.append(order[:ks])
            bottoms.append(order[len(order) - ks:][::-1])
    if sum(len(t) for t in tops) < 2:
        raise ValueError("need >= 2 candidates in each of the top and bottom groups taken within the strata")
    return tops, bottoms


def _classifier(C: float) -> Any:
    """L2 logistic regression (the intercept unpenalised), solved by Newton's method: exact to well below
    the weights' scale, so a weight's sign is the optimum's, not the solver's."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, solver="newton-cholesky", max_iter=500)


def _fit(x: np.ndarray, labels: np.ndarray, C: float) -> Any:
    return _classifier(C).fit(x, labels)


def _signs(weights: np.ndarray, varies: np.ndarray, kinds: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    return {kind: (int(np.sum(weights[m & varies] > 0)), int(np.sum(weights[m & varies] < 0)))
            for kind, m in kinds.items()}


def _share(pos: int, neg: int) -> float:
    return pos / (pos + neg) if pos + neg else math.nan


def _label_permutations(x: np.ndarray, labels: np.ndarray, blocks: list[np.ndarray], varies: np.ndarray,
                        kinds: dict[str, np.ndarray], C: float, n_perm: int,
                        gen: np.random.Generator) -> dict[str, np.ndarray]:
    """Shares of every kind of bit after ``n_perm`` random label shuffles within ``blocks``."""
    out: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(n_perm):
        perm = labels.copy()
        for b in blocks:
            perm[b] = gen.permutation(labels[b])
        w = _fit(x, perm, C).coef_[0]
        for kind, (pos, neg) in _signs(w, varies, kinds).items():
            out[kind].append(_share(pos, neg))
    return {kind: np.array(v) for kind, v in out.items()}


def _labellings(blocks: list[np.ndarray], labels: np.ndarray) -> int:
    total = 1
    for b in blocks:
        total *= math.comb(len(b), int(labels[b].sum()))
    return total


def _cv(x: np.ndarray, labels: np.ndarray, C: float, gen: np.random.Generator) -> tuple[float, float, int]:
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

    folds = max(2, min(5, int(np.bincount(labels).min())))
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=math.ceil(CV_SPLITS / folds), random_state=_seed(gen))
    scores = cross_val_score(_classifier(C), x, labels, cv=cv)
    return float(scores.mean()), float(scores.std()), len(scores)


def _tsne(x: np.ndarray, index: np.ndarray, labels: np.ndarray, gen: np.random.Generator
          ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, float | None, str]:
    from sklearn.manifold import TSNE

    m = len(index)
    if m < TSNE_MIN_POINTS:
        return None, None, None, None, (f"t-SNE not computed: {m} points, fewer than {TSNE_MIN_POINTS} (a 2-D "
                                        "embedding of so few points shows nothing reliable)")
    pick = np.sort(gen.choice(m, TSNE_MAX_POINTS, replace=False)) if m > TSNE_MAX_POINTS else np.arange(m)
    perp = float(min(30.0, (len(pick) - 1) / 3))
    emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=_seed(gen)).fit_transform(x[pick])
    note = (f"t-SNE of a random {len(pick)} of the {m} points (cap {TSNE_MAX_POINTS})" if len(pick) < m else
            f"t-SNE of all {m} points")
    return emb, index[pick], labels[pick], perp, note


def _subsample(index: np.ndarray, blocks: list[np.ndarray], gen: np.random.Generator
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """At most CLASSIFIER_MAX_POINTS positions of ``index`` (a random subset), and the blocks in them."""
    if len(index) <= CLASSIFIER_MAX_POINTS:
        return np.arange(len(index)), blocks
    pick = np.sort(gen.choice(len(index), CLASSIFIER_MAX_POINTS, replace=False))
    where = np.full(len(index), -1)
    where[pick] = np.arange(len(pick))
    return pick, [where[b][where[b] >= 0] for b in blocks]


def _bit_shares(x: np.ndarray, labels: np.ndarray, blocks: list[np.ndarray], C: float, n_perm: int,
                gen: np.random.Generator) -> tuple[Any, np.ndarray, tuple[BitShare, ...]]:
    """The fitted classifier, which bits vary, and the share of positive weights of each kind of bit
    with its permutation p-value."""
    clf = _fit(x, labels, C)
    varies = np.ptp(x, axis=0) > 0
    pos = np.arange(x.shape[1])
    kinds = {"identity": pos % 2 == 0, "conv": pos % 2 == 1, "all": np.ones(x.shape[1], dtype=bool)}
    weights = np.where(varies, clf.coef_[0], 0.0)  # a constant bit only duplicates the intercept
    null = _label_permutations(x, labels, blocks, varies, kinds, C, n_perm, gen)
    shares = []
    for kind, (n_pos, n_neg) in _signs(weights, varies, kinds).items():
        share = _share(n_pos, n_neg)
        shares.append(BitShare(kind=kind, n_positive=n_pos, n_negative=n_neg, share=share,
                               pvalue=rs.permutation_pvalue(share, null[kind], exact=False),
                               null_median=float(np.nanmedian(null[kind])) if np.isfinite(null[kind]).any()
                               else math.nan))
    return clf, weights, tuple(shares)


def finding1(bits: Any, pgd_acc: Any, *, k: int | None = None, strata: Any = None, rng: RngLike, C: float = 1.0,
             n_perm: int = N_PERM_FIT, tsne: bool = True) -> Finding1:
    """Finding #1's classifier (module docstring): top-k (label 1) vs bottom-k (label 0) by PGD
    accuracy, an L2 logistic regression (strength ``C``) on their raw 0/1 bits, the sign of every
    weight, the positive share of identity, conv and all bits with permutation p-values, the
    repeated cross-validated accuracy and (``tsne``) the embedding. The bits are not standardised:
    they share the 0/1 scale, and a positive rescaling per column could not change a weight's sign.

    Args:
        bits: (n, 28 * cells) genotype bits, identity bit first per edge.
        pgd_acc: (n,) final PGD accuracy.
        k: group size without strata (default ``round(0.3 n)``, at least 2; the paper: 300 of 1000).
        strata: one capacity key per candidate: take the top and bottom 30% within each stratum
            instead (the capacity-controlled classifier; ``k`` is then ignored).
        rng: generator or seed (subsampling, permutations, folds, t-SNE).
        C: inverse L2 strength. n_perm: label permutations. tsne: compute the embedding.

    Raises:
        ValueError: bad bits, NaN, unequal lengths, constant accuracy, k out of range, too few
            candidates within the strata, C not positive.
    """
    gen = _generator(rng)
    x = _bits_matrix(bits)
    pgd = _vector(pgd_acc, R.PGD_ACC, n=len(x), other=R.BITS, min_n=4)
    if not (isinstance(C, int | float) and C > 0):
        raise ValueError(f"finding1: C must be a positive number, got {C!r}")
    keys = None if strata is None else np.asarray(strata, dtype=float)
    tops, bottoms = _groups(pgd, keys, k)
    top, bottom = np.concatenate(tops), np.concatenate(bottoms)
    index = np.concatenate([top, bottom])
    labels = np.concatenate([np.ones(len(top), dtype=int), np.zeros(len(bottom), dtype=int)])
    starts = np.cumsum([0, *[len(t) for t in tops]])
    blocks = [np.concatenate([np.arange(s, s + len(t)), len(top) + np.arange(s, s + len(t))])
              for s, t in zip(starts, tops, strict=False)]
    pick, blocks = _subsample(index, blocks, gen)
    xs, lab = x[index[pick]], labels[pick]
    clf, weights, shares = _bit_shares(xs, lab, blocks, C, n_perm, gen)
    cv_mean, cv_std, splits = _cv(xs, lab, C, gen)
    emb, emb_index, emb_labels, perp, note = (_tsne(x, index, labels, gen) if tsne else
                                              (None, None, None, None, "t-SNE not requested"))
    allb = next(s for s in shares if s.kind == "all")
    floor = 2 / _labellings(blocks, lab)  # what the sample allows
    return Finding1(n=len(pgd), k=len(top), top_index=top, bottom_index=bottom, top_min_pgd=float(pgd[top].min()),
                    bottom_max_pgd=float(pgd[bottom].max()), feature_names=bit_names(x.shape[1]), weights=weights,
                    intercept=float(clf.intercept_[0]), n_positive=allb.n_positive, n_negative=allb.n_negative,
                    n_constant=int(np.sum(np.ptp(xs, axis=0) == 0)), positive_share=allb.share, shares=shares,
                    n_perm=n_perm, min_pvalue=min(1.0, floor), cv_accuracy=cv_mean, cv_std=cv_std, cv_splits=splits,
                    stratified=keys is not None, strata=None if keys is None else len(tops), points=len(pick),
                    subsampled=len(pick) < len(index), embedding=emb, embedding_index=emb_index,
                    embedding_labels=emb_labels, perplexity=perp, tsne_note=note, C=C)

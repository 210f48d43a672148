"""fspkit.stats.classifier: Finding #1's classifier against an independent fit, its shares and
permutation test (also on null data), the repeated cross-validation and the t-SNE caps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

from fspkit import stats
from fspkit.stats import classifier
from robnet.models.genotype import EDGES, Genotype
from tests._synthetic import make_capacity_records, make_records


def test_bit_names_follow_robnet_genotype_edges():
    names = stats.bit_names(28)
    src_names = ("s0", "s1", "f1", "f2", "f3")
    for i, (src, node) in enumerate(EDGES):
        assert names[2 * i] == f"e{i}:{src_names[src]}->f{node + 1}:id"
        assert names[2 * i + 1] == f"e{i}:{src_names[src]}->f{node + 1}:conv"
    g = Genotype.shared(["01"] + ["10"] * 13)  # bit order = Genotype.bits(): identity bit first on each edge
    assert [n for n, b in zip(names, g.bits(), strict=True) if b][:2] == ["e0:s0->f1:conv", "e1:s1->f1:id"]
    free = stats.bit_names(56)
    assert (len(free), free[0], free[28], free[-1]) == (56, "c0:e0:s0->f1:id", "c1:e0:s0->f1:id", "c1:e13:f3->f4:conv")
    with pytest.raises(ValueError, match=r"expected 28 bits per cell \(a positive multiple of 28\), got 30"):
        stats.bit_names(30)


def test_finding1_against_an_independent_fit():
    recs = make_records(40, seed=1)
    bits, pgd = stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc")
    f = stats.finding1(bits, pgd, rng=11, tsne=False, n_perm=19)
    order = np.argsort(-pgd, kind="stable")
    assert (f.k, f.n, f.points, f.subsampled, f.stratified) == (12, 40, 24, False, False)
    assert f.top_index.tolist() == order[:12].tolist() and sorted(f.bottom_index) == sorted(order[-12:])
    xs, labels = bits[np.r_[f.top_index, f.bottom_index]], np.r_[np.ones(12), np.zeros(12)]
    ref = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=500).fit(xs, labels)
    varies = np.ptp(xs, axis=0) > 0
    assert f.weights == pytest.approx(np.where(varies, ref.coef_[0], 0.0), abs=1e-6)
    ident, conv = f.share("identity"), f.share("conv")
    assert ident.n_positive == int(np.sum(ref.coef_[0][0::2][varies[0::2]] > 0))
    assert conv.n_positive + conv.n_negative == int(varies[1::2].sum())
    assert f.n_positive == ident.n_positive + conv.n_positive and f.n_constant == int(np.sum(~varies))
    # the cross-validation: 4 repeats of 5 stratified folds, seeded with an int drawn after the permutations
    gen = np.random.default_rng(11)
    for _ in range(19):
        for b in [np.arange(24)]:
            gen.permutation(b)
    cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=4, random_state=int(gen.integers(0, 2**31 - 1)))
    scores = cross_val_score(LogisticRegression(solver="newton-cholesky", max_iter=500), xs, labels.astype(int), cv=cv)
    assert (f.cv_splits, f.cv_accuracy, f.cv_std) == (20, pytest.approx(scores.mean()), pytest.approx(scores.std()))


def test_shares_permutation_test_finds_the_planted_bits_and_is_calibrated_on_null_data():
    recs = make_records(60, seed=2)
    f = stats.finding1(stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc"), rng=0, tsne=False, n_perm=99)
    assert f.share("all").pvalue < 0.05 and f.share("all").share > f.share("all").null_median
    rng = np.random.default_rng(1)
    sets, rejected = 50, 0
    for _ in range(sets):  # 60 permutations: the smallest p-value, 2 / 61, is below 0.05
        bits = rng.integers(0, 2, size=(16, 28)).astype(float)
        p = stats.finding1(bits, rng.normal(size=16), rng=rng, tsne=False, n_perm=60).share("identity").pvalue
        rejected += p < 0.05
    assert rejected <= int(sps.binom.isf(1e-3, sets, 0.05))


def test_within_strata_groups_hold_capacity_fixed():
    recs = make_capacity_records(90, seed=0)  # accuracy depends on capacity alone
    bits, pgd, convs = stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc"), stats.column(recs, "convs")
    paper = stats.finding1(bits, pgd, rng=0, tsne=False, n_perm=99)
    within = stats.finding1(bits, pgd, strata=convs, rng=0, tsne=False, n_perm=99)
    assert paper.share("conv").share == 1.0 and paper.share("conv").pvalue < 0.05  # capacity shows as "conv bits"
    assert within.stratified and within.strata == 3 and within.k == 27  # 9 of each 30-candidate stratum
    assert np.array_equal(np.sort(convs[within.top_index]), np.sort(convs[within.bottom_index]))
    assert within.share("identity").pvalue > 0.05


def test_ties_keep_input_order_and_constant_bits_are_left_out():
    bits = np.zeros((6, 28))
    bits[:3, 0] = 1  # only bit 0 varies; it marks the robust half
    bits[:, 5] = 1  # always on: constant
    f = stats.finding1(bits, [0.5, 0.5, 0.5, 0.1, 0.1, 0.1], k=3, rng=0, tsne=False, n_perm=9)
    assert f.top_index.tolist() == [0, 1, 2] and f.bottom_index.tolist() == [5, 4, 3]
    assert (f.n_positive, f.n_negative, f.n_constant, f.positive_share) == (1, 0, 27, 1.0)
    assert np.count_nonzero(f.weights) == 1 and f.min_pvalue == pytest.approx(2 / 20)  # C(6, 3) labellings


def test_tsne_only_from_enough_points_and_capped(monkeypatch):
    recs = make_records(60, seed=2)
    bits, pgd = stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc")
    few = stats.finding1(bits, pgd, rng=1, n_perm=9)
    assert few.embedding is None and few.tsne_note.startswith("t-SNE not computed: 36 points, fewer than 100")
    monkeypatch.setattr(classifier, "TSNE_MIN_POINTS", 20)
    monkeypatch.setattr(classifier, "TSNE_MAX_POINTS", 30)
    a = stats.finding1(bits, pgd, rng=1, n_perm=9)
    b = stats.finding1(bits, pgd, rng=np.random.default_rng(1), n_perm=9)
    assert a.embedding is not None and a.embedding.shape == (30, 2) and a.perplexity == pytest.approx(29 / 3)
    assert a.tsne_note == "t-SNE of a random 30 of the 36 points (cap 30)" and np.array_equal(a.embedding, b.embedding)
    assert set(a.embedding_index.tolist()) <= set(a.top_index.tolist()) | set(a.bottom_index.tolist())


def test_classifier_cap(monkeypatch):
    monkeypatch.setattr(classifier, "CLASSIFIER_MAX_POINTS", 20)
    recs = make_records(60, seed=2)
    f = stats.finding1(stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc"), rng=0, tsne=False, n_perm=9)
    assert (f.points, f.subsampled, f.k) == (20, True, 18)


@pytest.mark.parametrize(("bits", "pgd", "kwargs", "match"), [
    (np.full((6, 28), 2), np.arange(6.0), {}, r"bits: every entry must be 0 or 1"),
    (np.zeros((6, 27)), np.arange(6.0), {}, r"28 bits per cell .* got 27"),
    (np.zeros(28), np.arange(6.0), {}, r"bits: expected an \(n, 28 \* cells\) array of 0/1, got shape \(28,\)"),
    (np.zeros((6, 28)), np.arange(5.0), {}, r"pgd_acc has 5 values but bits has 6"),
    (np.zeros((6, 28)), np.arange(6.0), {"k": 4}, r"k: expected an int in 2..3 .* got 4 for n = 6"),
    (np.zeros((6, 28)), np.ones(6), {}, r"pgd_acc is constant"),
    (np.zeros((6, 28)), np.arange(6.0), {"C": 0}, r"C must be a positive number, got 0"),
    (np.zeros((6, 28)), np.arange(6.0), {"strata": [0, 1, 2, 3, 4, 5]},
     r"need >= 2 candidates in each of the top and bottom groups taken within the strata"),
])
def test_finding1_errors(bits, pgd, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.finding1(bits, pgd, rng=0, tsne=False, n_perm=9, **kwargs)

import random

import pytest

from robnet.models import genotype as G
from robnet.models.genotype import ROBNET_FREE, ROBNET_LARGE, Genotype

LARGE = "11 11 11 11 11 01 11 01 10 11 01 01 01 11"


def test_edge_layout():
    assert G.EDGES[:2] == ((0, 0), (1, 0))
    assert G.EDGES[13] == (4, 3)
    assert G.INPUT_EDGES == (0, 1, 2, 3, 5, 6, 9, 10)
    assert G.DIRECT_EDGES == (1, 4, 8, 13)
    assert len(G.SKIP_EDGES) == 10


def test_string_round_trip_shared_and_free():
    assert str(ROBNET_LARGE) == LARGE
    assert Genotype.parse(str(ROBNET_LARGE)) == ROBNET_LARGE
    assert Genotype.parse(str(ROBNET_FREE)) == ROBNET_FREE
    assert str(ROBNET_FREE).startswith("free: 11 10 11 11 10 11 01 01 10 11 11 00 11 01 | 11 00")
    assert len(ROBNET_FREE.cells) == 20 and ROBNET_FREE.cell_free
    # 28-bit compact form parses to the same genotype
    assert Genotype.parse(LARGE.replace(" ", "")) == ROBNET_LARGE


def test_official_round_trip():
    official = ROBNET_FREE.to_official()
    assert official[6][:3] == ["11", "11", "11"]
    assert Genotype.from_official(official) == ROBNET_FREE
    one = Genotype.from_official([LARGE.split()])
    assert one == ROBNET_LARGE and not one.cell_free


def test_bits_round_trip():
    bits = ROBNET_FREE.bits()
    assert len(bits) == 20 * 28
    assert Genotype.from_bits(bits, cell_free=True) == ROBNET_FREE
    assert Genotype.from_bits(ROBNET_LARGE.bits()) == ROBNET_LARGE


def test_density_and_budget_hand_made():
    # 4 '11' edges, 2 '01', 1 '10', rest '00' but each node keeps one live edge.
    cell = ["11", "00", "00", "01", "00", "00", "00", "00", "11", "00", "00", "00", "00", "10"]
    g = Genotype.shared(cell)
    assert g.density() == pytest.approx((2 + 1 + 2 + 1) / 28)
    assert g.num_convs() == [3]
    # direct edges 1, 4, 8, 13 = '00', '00', '11', '10'
    assert g.direct_edge_convs() == [1]
    full = Genotype.shared(["11"] * 14)
    assert full.density() == 1.0 and full.num_convs() == [14] and full.direct_edge_convs() == [4]


def test_robnet_large_statistics():
    # RobNet-large has 13 sep-convs per cell (docs/design.md §1: small would have 7)
    assert ROBNET_LARGE.num_convs() == [13]
    assert ROBNET_LARGE.density() == pytest.approx(22 / 28)
    assert ROBNET_LARGE.direct_edge_convs() == [3]  # edge 8 (f2->f3) is identity only
    assert len(ROBNET_FREE.num_convs()) == 20


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("11 11 11", r"cell 0: expected 14 edge codes, got 3"),
        ("11 11 11 11 11 01 11 01 10 11 01 01 01 12", r"cell 0, edge 13 \(f3->f4\): bad code '12'"),
        ("00 00 11 11 11 01 11 01 10 11 01 01 01 11", r"cell 0: node f1 has no input \(edges 0..1"),
        ("free: " + LARGE + " | 11 11 00 00 00 01 11 01 10 11 01 01 01 11",
         r"cell 1: node f2 has no input \(edges 2\.\.4 are all '00'\)"),
        ("11 11 11 11 11 01 11 01 10 00 00 00 00 00", r"cell 0: node f4 has no input \(edges 9\.\.13 are all"),
        (LARGE + " | " + LARGE, r"start with 'free:'"),
    ],
)
def test_validation_errors(text, match):
    with pytest.raises(ValueError, match=match):
        Genotype.parse(text)


def test_constructor_errors():
    with pytest.raises(ValueError, match="exactly one cell"):
        Genotype((tuple(LARGE.split()),) * 2)
    with pytest.raises(TypeError, match="got the string"):
        Genotype.shared(LARGE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 28 bits"):
        Genotype.from_bits([1, 0, 1])
    with pytest.raises(ValueError, match="layers"):
        ROBNET_FREE.check_layers(5)


def test_sample_is_seeded_valid_and_respects_budget():
    a = G.sample(random.Random(3), cell_free=True, layers=7)
    b = G.sample(3, cell_free=True, layers=7)
    assert a == b and len(a.cells) == 7
    for budget in (0, 3, 7, 14):
        g = G.sample(random.Random(budget), budget=budget)
        assert g.num_convs() == [budget]
    with pytest.raises(ValueError, match="budget"):
        G.sample(0, budget=15)


def test_enumeration_matches_closed_form_count():
    # budget 14: conv bit everywhere, identity bits free -> every cell valid: 2^14
    assert G.count_cells(budget=14) == 2 ** 14
    assert sum(1 for _ in G.iter_cells(budget=14)) == 2 ** 14
    # budget 0: each node needs one identity edge: (2^2-1)(2^3-1)(2^4-1)(2^5-1)
    assert G.count_cells(budget=0) == 3 * 7 * 15 * 31
    assert sum(1 for _ in G.iter_cells(budget=0)) == 3 * 7 * 15 * 31
    assert G.count_cells() == sum(G.count_cells(budget=b) for b in range(15))
    # 2^28 codes minus those with an all-zero node
    assert G.count_cells() == (4**2 - 1) * (4**3 - 1) * (4**4 - 1) * (4**5 - 1)


def test_one_validity_rule_for_parsing_sampling_and_enumeration():
    # Genotype accepts a cell exactly when the sampler's and the enumerator's rule calls it valid
    accepted = rejected = 0
    rng = random.Random(0)
    for cell in (tuple(rng.choice(["00", "00", "01", "10", "11"]) for _ in range(G.NUM_EDGES)) for _ in range(500)):
        try:
            Genotype.shared(cell)
            accepted += 1
        except ValueError:
            rejected += 1
            assert not G._is_valid(cell)
        else:
            assert G._is_valid(cell)
    assert accepted and rejected
    assert not hasattr(G, "OP_NAMES") and not hasattr(G, "_comb")  # removed: nothing used them

"""Distribution metrics: SPEC §4 conventions, the paper's baseline numbers on the real data, refusals."""

import numpy as np
import pytest

from hlv_assets.lib import raw
from hlv_assets.lib.distributions import BASELINES, baseline_distribution
from hlv_assets.lib.metrics import compare, distance_correlation, jsd_per_item, kl_per_item, tvd_per_item
from hlv_assets.lib.validation import DistributionError


@pytest.fixture(scope="module")
def items(data_dir):
    chaos = raw.load_chaosnli(data_dir / raw.CHAOSNLI_MNLI)
    return raw.load_hlv_items(data_dir / raw.HLV_ITEMS, chaos, raw.load_varierr(data_dir / raw.VARIERR))


def test_baselines_reproduce_the_recomputed_paper_values(items):
    hjd = baseline_distribution(items, "chaosnli")
    varierr = compare(hjd, baseline_distribution(items, "varierr"))
    mnli = compare(hjd, baseline_distribution(items, "mnli"))
    assert [round(varierr[k], 5) for k in ("kl", "jsd", "tvd")] == [3.60366, 0.28215, 0.28581]
    assert [round(mnli[k], 5) for k in ("kl", "jsd", "tvd")] == [1.24249, 0.20921, 0.21472]
    # D.Corr is the one poster value of these rows that our data reproduces to 3 decimals
    assert (round(varierr["dcor"], 3), round(mnli["dcor"], 3)) == (0.688, 0.795)
    assert compare(hjd, hjd)["kl"] == 0.0 and compare(hjd, hjd)["dcor"] == pytest.approx(1.0)
    assert compare(hjd, baseline_distribution(items, "uniform"))["dcor"] == 0.0  # constant matrix


def test_all_baselines_are_distributions(items):
    for source in BASELINES:
        d = baseline_distribution(items, source)
        assert d.shape == (341, 3) and np.allclose(d.sum(axis=1), 1.0)


def test_conventions_on_small_cases():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    kl = kl_per_item(p, q)
    assert kl[1] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(kl[0]) and kl[0] > 20  # clipped at 1e-10, not infinite
    from scipy.spatial.distance import jensenshannon

    for a, b in zip(p, q):
        assert jsd_per_item([a], [b])[0] == pytest.approx(jensenshannon(a, b))
    assert tvd_per_item(p, q).tolist() == [1.0, 0.0]


def test_distance_correlation_equals_dcor():
    import dcor

    rng = np.random.default_rng(7)
    p, q = rng.dirichlet([1, 2, 3], 60), rng.dirichlet([2, 2, 1], 60)
    assert distance_correlation(p, q) == pytest.approx(dcor.distance_correlation(p, q), abs=1e-10)


@pytest.mark.parametrize("bad", [[[np.nan, 0.5, 0.5]], [[-0.1, 0.6, 0.5]], [[0.3, 0.3, 0.3]], [[0.5, 0.5]]])
def test_non_distributions_are_refused(bad):
    good = [[1 / 3, 1 / 3, 1 / 3]] if len(bad[0]) == 3 else [[0.5, 0.5]]
    with pytest.raises(DistributionError):
        compare(good, bad)
    with pytest.raises(DistributionError):
        kl_per_item(bad, good)

"""The GX distribution suite: good data passes; each kind of bad row fails."""

import numpy as np
import pandas as pd
import pytest

from hlv_assets.lib.quality import validate_distribution


def frame(rows):
    return pd.DataFrame(rows, columns=["p_e", "p_n", "p_c"]).assign(uid=[f"u{i}" for i in range(len(rows))])


def test_good_rows_pass():
    result = validate_distribution(frame([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]), 3)
    assert result.success and not result.failures


@pytest.mark.parametrize("row,expect", [
    ([0.2, 0.3, 0.48], "prob_sum"),  # sums to 0.98
    ([0.5, 0.5, 0.5], "prob_sum"),   # sums to 1.5
    ([np.nan, 0.5, 0.5], "p_e"),
    ([-0.1, 0.6, 0.5], "p_e"),
])
def test_bad_rows_fail(row, expect):
    result = validate_distribution(frame([[0.2, 0.3, 0.5], row]), 2)
    assert not result.success
    assert any(expect in f for f in result.failures)


def test_row_count_is_checked():
    result = validate_distribution(frame([[0.2, 0.3, 0.5]]), 341)
    assert not result.success and any("row_count" in f for f in result.failures)

import math

import pytest
from scipy import stats as st

from optimlab.lab.stats import fmt_interval, fmt_value, mean_ci, paired_test


def test_mean_ci_matches_t_formula():
    xs = [1.0, 2.0, 4.0]
    ci = mean_ci(xs)
    half = st.t.ppf(0.975, 2) * st.tstd(xs) / math.sqrt(3)
    assert ci.mean == pytest.approx(7 / 3)
    assert ci.low == pytest.approx(7 / 3 - half) and ci.high == pytest.approx(7 / 3 + half)
    assert ci.n == 3


def test_single_value_has_no_interval_and_prints_n1():
    ci = mean_ci([0.5])
    assert math.isnan(ci.low) and ci.n == 1
    assert fmt_interval(ci) == "0.5 (n = 1)"
    assert "±" not in fmt_interval(ci)


def test_paired_test_matches_scipy():
    a, b = [1.0, 2.0, 3.5, 4.0], [0.8, 1.9, 3.0, 4.1]
    res = paired_test(a, b)
    ref = st.ttest_rel(a, b)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.diff.mean == pytest.approx(sum(x - y for x, y in zip(a, b)) / 4)


def test_paired_test_refuses_unpaired():
    with pytest.raises(ValueError, match="same seeds"):
        paired_test([1.0, 2.0], [1.0])


def test_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])


@pytest.mark.parametrize("x, text", [(0.000123456, "1.23e-4"), (1234.5678, "1.23e+03"), (0.5, "0.5"),
                                     (123456.0, "1.23e5"), (0.0, "0")])
def test_fmt_value_rounds(x, text):
    out = fmt_value(x)
    assert len(out) <= 9
    assert float(out.replace("e+", "e")) == pytest.approx(x, rel=5e-3)

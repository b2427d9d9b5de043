"""Paired statistics against values computed by hand or by scipy."""

from __future__ import annotations

import numpy as np
import pytest

from retrollm.stats import bootstrap_interval, compare, mcnemar_exact


def test_mcnemar_exact_matches_the_binomial_test() -> None:
    from scipy.stats import binomtest

    for only_a, only_b in [(0, 0), (1, 0), (5, 1), (12, 3), (40, 38), (0, 9)]:
        expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b).pvalue
        assert mcnemar_exact(only_a, only_b) == pytest.approx(expected)
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)  # hand: 2 * 0.5**10
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_bootstrap_interval_brackets_the_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.6
    b = rng.random(400) < 0.4
    diff, low, high = bootstrap_interval(100 * a, 100 * b)
    assert diff == pytest.approx(100 * (a.mean() - b.mean()))
    se = 100 * np.sqrt((a.var() + b.var()) / 400)  # independent draws: normal approximation
    assert low == pytest.approx(diff - 1.96 * se, abs=1.5)
    assert high == pytest.approx(diff + 1.96 * se, abs=1.5)
    same = bootstrap_interval([1.0] * 20, [1.0] * 20)
    assert same == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap_interval([1.0], [1.0, 0.0])


def test_compare_pairs_by_question_id() -> None:
    a = {f"q{i}": {"acc": 1.0, "em": 1.0, "f1": 1.0} for i in range(30)}
    b = {f"q{i}": {"acc": float(i < 10), "em": 0.0, "f1": 0.5} for i in range(30)}
    b["extra"] = {"acc": 1.0, "em": 1.0, "f1": 1.0}  # not shared: ignored
    result = compare("full", "rag", a, b)
    assert (result.n, result.only_a, result.only_b) == (30, 20, 0)
    assert result.acc[0] == pytest.approx(100 * 20 / 30, abs=0.01)
    assert result.verdict() == "above" and result.verdict("f1") == "above"
    tie = compare("x", "y", a, a)
    assert tie.verdict() == "not separable at n=30" and tie.mcnemar_p == 1.0
    with pytest.raises(ValueError, match="share no question"):
        compare("x", "y", a, {"other": a["q0"]})

"""Paired comparisons of two methods on the same questions.

Per-question scores of two methods on one question sample are paired, so their
difference is tested as such: an exact McNemar test on the questions where exactly one of
them is correct, and a bootstrap interval on the mean difference of any per-question
score (Acc, EM, F1), resampling questions. "A above B" in the report means the interval
lies above zero; otherwise the two are "not separable at n".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each discordant question is a
    fair coin, so min(only_a, only_b) ~ Binomial(only_a + only_b, 1/2)."""
    if only_a < 0 or only_b < 0:
        raise ValueError("counts must be non-negative")
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_interval(
    a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:  # fmt: skip
    """(mean difference, low, high) of a - b in the units given, a percentile bootstrap
    over questions (paired: one draw picks a question for both methods)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two equally long, non-empty score lists, got {x.size}, {y.size}")
    diff = x - y
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(diff.mean()), float(low), float(high)


class PairedComparison(BaseModel):
    """Method A against method B on the same n questions (differences in points)."""

    a: str
    b: str
    n: int
    only_a: int = Field(description="Questions only A answers correctly (Acc).")
    only_b: int = Field(description="Questions only B answers correctly (Acc).")
    mcnemar_p: float
    acc: tuple[float, float, float] = Field(description="Acc difference, 95% interval.")
    em: tuple[float, float, float]
    f1: tuple[float, float, float]

    def verdict(self, metric: str = "acc") -> str:
        _, low, high = getattr(self, metric)
        if low > 0:
            return "above"
        if high < 0:
            return "below"
        return f"not separable at n={self.n}"


def compare(
    a: str, b: str, scores_a: dict[str, dict[str, float]], scores_b: dict[str, dict[str, float]],
    seed: int = 0,
) -> PairedComparison:  # fmt: skip
    """Pair per-question scores ({question id: {"acc", "em", "f1"}}, values 0-1) on the
    questions both methods answered; raises if they share none."""
    ids = sorted(set(scores_a) & set(scores_b))
    if not ids:
        raise ValueError(f"{a} and {b} share no question")
    correct_a = [scores_a[i]["acc"] > 0 for i in ids]
    correct_b = [scores_b[i]["acc"] > 0 for i in ids]
    only_a = sum(x and not y for x, y in zip(correct_a, correct_b, strict=True))
    only_b = sum(y and not x for x, y in zip(correct_a, correct_b, strict=True))

    def interval(metric: str) -> tuple[float, float, float]:
        diff, low, high = bootstrap_interval(
            [100 * scores_a[i][metric] for i in ids],
            [100 * scores_b[i][metric] for i in ids],
            seed=seed,
        )
        return round(diff, 2), round(low, 2), round(high, 2)

    return PairedComparison(
        a=a, b=b, n=len(ids), only_a=only_a, only_b=only_b,
        mcnemar_p=mcnemar_exact(only_a, only_b),
        acc=interval("acc"), em=interval("em"), f1=interval("f1"),
    )  # fmt: skip

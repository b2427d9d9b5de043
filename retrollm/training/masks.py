"""Loss masks and weights of a target sequence (docs/method.md §8).

Each token carries a role character (schemas.training.ROLE_CHARS); weights follow from
roles alone, so the mask a person inspects and the weights the loss uses cannot drift.

- Prompt tokens: no loss (the model does not learn to write questions).
- Evidence: the middle 80% of each evidence stays in the input but is excluded from the
  loss. The paper does not say how the kept 20% splits; we keep `keep_fraction` (10%) at
  each end, rounded up, so a one-token evidence is fully kept and any evidence of n >= 1
  tokens keeps at least one token at each end: the model learns where evidence starts
  (the hard, constrained choice) and how it ends, not to recite whole passages.
- Answer tokens (the answer text, its closing period and end-of-sequence): weight gamma.
- Clue tokens and structure tokens (special tokens, the forced " The answer is"): weight 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PROMPT, STRUCTURE, CLUE, EVIDENCE, MASKED, ANSWER = "p", "s", "c", "e", "m", "a"


def kept_at_each_end(n_tokens: int, keep_fraction: float) -> int:
    """Tokens kept in the loss at each end of an evidence of `n_tokens`.

    Rounded up (ceil(0.1 * 25) = 3), with a small tolerance so that 0.1 * 30 = 3.0000000004
    is not rounded to 4.
    """
    if not 0.0 <= keep_fraction <= 0.5:
        raise ValueError(f"keep_fraction must lie in [0, 0.5], got {keep_fraction}")
    if n_tokens <= 0:
        return 0
    return min(n_tokens, math.ceil(keep_fraction * n_tokens - 1e-9))


def evidence_roles(n_tokens: int, keep_fraction: float) -> str:
    """Roles of one evidence: kept ends ('e') around a masked middle ('m')."""
    keep = kept_at_each_end(n_tokens, keep_fraction)
    if 2 * keep >= n_tokens:
        return EVIDENCE * n_tokens
    return EVIDENCE * keep + MASKED * (n_tokens - 2 * keep) + EVIDENCE * keep


def role_weights(gamma: float) -> dict[str, float]:
    """Weight per role: L = -sum log P(clue, evidence) - gamma * sum log P(answer)."""
    return {PROMPT: 0.0, MASKED: 0.0, STRUCTURE: 1.0, CLUE: 1.0, EVIDENCE: 1.0, ANSWER: gamma}


def weights_from_roles(roles: str, gamma: float) -> list[float]:
    """Per-token loss weights for a role string."""
    table = role_weights(gamma)
    try:
        return [table[role] for role in roles]
    except KeyError as error:
        raise ValueError(f"unknown role {error.args[0]!r} in {roles!r}") from error


def masked_share(roles: Sequence[str] | str) -> float:
    """Share of target (non-prompt) tokens that are excluded from the loss."""
    target = [r for r in roles if r != PROMPT]
    return sum(r == MASKED for r in target) / len(target) if target else 0.0

"""Decoding strategies, registered by name so params.yaml (decode.strategy) picks one.

A strategy is a small declarative record: where clues come from and what constrains the
evidence. The decoder reads these flags; adding a strategy is registering a new record
(or a new evidence mode in decoder.py), never editing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from retrollm.decoding.config import DecodeConfig

EvidenceMode = Literal["candidates", "hard-windows", "corpus", "free"]


@dataclass(frozen=True)
class Strategy:
    """How one method decodes.

    generate_clues: the model writes clues (else an empty clue block is forced).
    constrain_clues: clue tokens must continue the clue somewhere in the corpus.
    retrieve: candidate documents and future windows are computed when clues end.
    evidence: what constrains evidence tokens: the candidate documents with the eq. 12
      bonus (P), window i then its document (U hard windows), the whole corpus, or nothing.
    windows: whether kept windows exist (the eq. 12 bonus / hard windows need them).
    """

    name: str
    generate_clues: bool
    constrain_clues: bool
    retrieve: bool
    evidence: EvidenceMode
    windows: bool
    description: str = ""


_REGISTRY: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    if strategy.name in _REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy
    return strategy


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(strategy_names())}") from None


def resolve_strategy(config: DecodeConfig) -> Strategy:
    """The configured strategy with the ablation switches applied (paper Table 3)."""
    strategy = get_strategy(config.strategy)
    if not config.clue_generation:
        strategy = replace(strategy, generate_clues=False)
    if not config.future_windows and strategy.evidence in ("candidates", "hard-windows"):
        strategy = replace(strategy, evidence="candidates", windows=False)
    return strategy


register_strategy(
    Strategy(
        "retrollm",
        generate_clues=True,
        constrain_clues=True,
        retrieve=True,
        evidence="candidates",
        windows=True,
        description="P: corpus-constrained clues, fused candidate documents, evidence "
        "constrained to them with the eq. 12 forward-looking bonus.",
    )
)
register_strategy(
    Strategy(
        "retrollm-hard-windows",
        generate_clues=True,
        constrain_clues=True,
        retrieve=True,
        evidence="hard-windows",
        windows=True,
        description="U: as retrollm, but evidence i must start in the first fifth of "
        "window i and stay in it while short, then in its document.",
    )
)
register_strategy(
    Strategy(
        "naive-constrained",
        generate_clues=False,
        constrain_clues=False,
        retrieve=False,
        evidence="corpus",
        windows=False,
        description="Paper ablation: no clues; evidence constrained by the whole corpus.",
    )
)
register_strategy(
    Strategy(
        "unconstrained",
        generate_clues=True,
        constrain_clues=False,
        retrieve=False,
        evidence="free",
        windows=False,
        description="Paper ablation: the same format and length rules, no corpus constraint.",
    )
)

"""The RetroLLM decoder: clues, then evidence constrained to the corpus, then the answer.

from retrollm.decoding import DecodeConfig, RetroLLM
decoder = RetroLLM.from_artifacts(paths, DecodeConfig(), adapter=None)
predictions = decoder.answer(["Who wrote Hamlet?"])
"""

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.strategies import Strategy, get_strategy, register_strategy, strategy_names

__all__ = [
    "DecodeConfig",
    "RetroLLM",
    "Strategy",
    "get_strategy",
    "register_strategy",
    "strategy_names",
]


def __getattr__(name: str) -> object:
    """RetroLLM is imported on first use: it pulls in torch and transformers, which code
    that only reads DecodeConfig (stages, params validation) should not pay for."""
    if name == "RetroLLM":
        from retrollm.decoding.pipeline import RetroLLM

        return RetroLLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

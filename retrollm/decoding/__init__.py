"""The RetroLLM decoder: clues, then evidence constrained to the corpus, then the answer.

from retrollm.decoding import DecodeConfig, RetroLLM
decoder = RetroLLM.from_artifacts(paths, DecodeConfig(), adapter=None)
predictions = decoder.answer(["Who wrote Hamlet?"])
"""

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.strategies import Strategy, get_strategy, register_strategy, strategy_names

__all__ = ["DecodeConfig", "Strategy", "get_strategy", "register_strategy", "strategy_names"]

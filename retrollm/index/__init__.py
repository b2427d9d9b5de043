"""Corpus index over token ids: occurrence counts, next-token lists, positions, documents.

from retrollm.index import CorpusIndex
index = CorpusIndex.build(tokens, doc_offsets, tokenizer_fingerprint=fp)
state = index.state(prefix)                     # or index.root()
ids, counts = index.continuations(state)        # what the decoder may emit next
states = index.extend(state, ids)               # one step for many candidates at once
"""

from retrollm.index.core import CorpusIndex
from retrollm.index.state import State, StateBatch
from retrollm.index.storage import IndexLoadError
from retrollm.index.suffix_array import BACKENDS

__all__ = ["BACKENDS", "CorpusIndex", "IndexLoadError", "State", "StateBatch"]

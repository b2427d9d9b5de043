"""Corpus index over token ids: occurrence counts, next-token lists, positions, documents.

from retrollm.index import CorpusIndex
index = CorpusIndex.build(tokens, doc_offsets, tokenizer_fingerprint=fp)
state = index.state(prefix)                     # or index.root()
ids, counts = index.continuations(state)        # what the decoder may emit next
states = index.extend(state, ids)               # one step for many candidates at once

The same API over shards of the corpus (build_sharded, ShardedIndex.load); load_index
opens either kind of saved index, and TokenIndex is what both offer.
"""

from retrollm.index.core import CorpusIndex
from retrollm.index.protocol import IndexState, TokenIndex
from retrollm.index.sharded import ShardedIndex
from retrollm.index.sharded_build import build_sharded, build_shards, load_index
from retrollm.index.sharded_state import ShardedState, ShardedStateBatch
from retrollm.index.shards import shard_plan
from retrollm.index.state import State, StateBatch
from retrollm.index.storage import IndexLoadError
from retrollm.index.suffix_array import BACKENDS

__all__ = [
    "BACKENDS",
    "CorpusIndex",
    "IndexLoadError",
    "IndexState",
    "ShardedIndex",
    "ShardedState",
    "ShardedStateBatch",
    "State",
    "StateBatch",
    "TokenIndex",
    "build_sharded",
    "build_shards",
    "load_index",
    "shard_plan",
]

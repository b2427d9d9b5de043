"""Which tokens a hypothesis may emit next, and the eq. 12 forward-looking bonus.

Everything here is a pure function of (index state, counters, window hits), so the rules
can be unit-tested with hand-made logits and windows, and the decoder's per-step work is
a handful of vectorised numpy operations per hypothesis.

Allowed sets are returned as sparse id arrays (continuations are usually a few ids out of
tens of thousands); `pick` scores only those ids. `masked_logits` spells out the same rule
as a full row with -inf outside the allowed set, which is what the paper describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.state import WindowTable

_NO_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Allowed:
    """The next-token rule for one hypothesis at one step.

    ids: the allowed token ids (None means every id except `banned`, the unconstrained
    case). bonus: added to the logits of `ids` (eq. 12), aligned with ids, or None.
    """

    ids: np.ndarray | None
    bonus: np.ndarray | None = None
    banned: np.ndarray = field(default_factory=lambda: _NO_IDS)

    @classmethod
    def only(cls, *ids: int) -> Allowed:
        return cls(np.asarray(ids, dtype=np.int64))


def pick(logits: np.ndarray, allowed: Allowed) -> int:
    """Greedy choice under a rule. Scores within float noise of the best (TIE_TOLERANCE,
    relative) count as ties and go to the earliest allowed id: an untrained model gives
    the five new tokens identical embeddings, hence logits equal up to the rounding of
    whatever matmul kernel the batch shape picked, and results must not depend on the
    batch a question landed in."""
    if allowed.ids is None:
        row = logits.astype(np.float64)
        row[allowed.banned] = -np.inf
        return _first_best(row)
    if allowed.ids.size == 0:
        raise ValueError("no token is allowed")
    return pick_among(logits[allowed.ids], allowed)


def pick_among(values: np.ndarray, allowed: Allowed) -> int:
    """pick, given only the logits of the allowed ids (aligned with allowed.ids)."""
    scores = values.astype(np.float64)
    if allowed.bonus is not None:
        scores += allowed.bonus
    return int(allowed.ids[_first_best(scores)])  # type: ignore[index]


TIE_TOLERANCE = 1e-5


def _first_best(scores: np.ndarray) -> int:
    best = scores.max()
    return int(np.argmax(scores >= best - TIE_TOLERANCE * max(1.0, abs(best))))


def masked_logits(logits: np.ndarray, allowed: Allowed) -> np.ndarray:
    """The full adjusted row: logit + bonus on allowed ids, -inf everywhere else."""
    if allowed.ids is None:
        row = logits.astype(np.float64)
        row[allowed.banned] = -np.inf
        return row
    row = np.full(logits.shape, -np.inf, dtype=np.float64)
    row[allowed.ids] = logits[allowed.ids]
    if allowed.bonus is not None:
        row[allowed.ids] += allowed.bonus
    return row


def drop_ids(ids: np.ndarray, unwanted: np.ndarray) -> np.ndarray:
    """ids without the unwanted ones (EOS must never continue a corpus span)."""
    if ids.size == 0 or unwanted.size == 0:
        return ids
    return ids[~np.isin(ids, unwanted)]


# --------------------------------------------------------------------------- clues
def clue_rule(
    continuations: np.ndarray | None,
    clue_length: int,
    clues_done: int,
    config: DecodeConfig,
    sep: int,
    clue_end: int,
    free_banned: np.ndarray = _NO_IDS,
) -> Allowed:
    """Clue tokens must continue the clue in the corpus (`continuations`; None when the
    strategy does not constrain clues); a clue may close once it has
    min_clue_tokens_before_sep tokens, must close at max_clue_tokens, and the last allowed
    clue closes with <|/clue|> rather than <|sep|>. A clue that cannot continue (a corpus
    dead end) may close early, so no hypothesis is ever left without a legal token."""
    may_extend = clue_length < config.max_clue_tokens
    closers = [clue_end] + ([sep] if clues_done + 1 < config.max_clues else [])
    long_enough = clue_length >= config.min_clue_tokens_before_sep
    if continuations is None:
        if not may_extend:
            return Allowed(np.asarray(closers, dtype=np.int64))
        banned = free_banned if long_enough else np.concatenate([free_banned, [sep, clue_end]])
        return Allowed(None, banned=np.asarray(banned, dtype=np.int64))
    ids = continuations if may_extend else _NO_IDS
    if long_enough or ids.size == 0:
        ids = np.concatenate([ids, np.asarray(closers, dtype=np.int64)])
    return Allowed(ids)


# ------------------------------------------------------------------------ evidence
@dataclass(frozen=True)
class EvidenceBudget:
    """Counters the length rules read (docs/method.md §6, 'Length rules', plus min_evidences)."""

    evidence_length: int  # tokens of the current evidence so far
    remaining: int  # tokens of the generation budget left before this one
    may_open_new: bool  # another evidence is allowed after a <|sep|>
    must_open_new: bool = False  # min_evidences not reached: only <|sep|> ends this one

    @classmethod
    def of(
        cls,
        evidence_length: int,
        generated: int,
        evidences_done: int,
        cap: int,
        c: DecodeConfig,
        windows_left: int | None = None,
    ) -> EvidenceBudget:
        """windows_left: kept windows no evidence has used, this one included (None: the
        strategy does not steer evidences to distinct windows)."""
        remaining = c.budget_tokens - generated
        may_open = evidences_done + 1 < cap and remaining >= c.new_evidence_min_budget
        if windows_left is not None:
            may_open = may_open and windows_left > 0
        must_open = may_open and evidences_done + 1 < c.min_evidences and windows_left is not None
        return cls(evidence_length, remaining, may_open, must_open)


def evidence_rule(
    continuations: np.ndarray | None,
    budget: EvidenceBudget,
    config: DecodeConfig,
    sep: int,
    evidence_end: int,
    bonus: np.ndarray | None = None,
    free_banned: np.ndarray = _NO_IDS,
    stop_bonus: float = 0.0,
) -> Allowed:
    """Evidence tokens continue the evidence in the constraining index (`continuations`,
    None when unconstrained), with the U length rules: <|/evidence|> forced when the
    budget is nearly spent, <|sep|>/<|/evidence|> only after min_evidence_tokens, only
    they after max_evidence_tokens, <|sep|> only while another evidence may follow, and
    only <|sep|> while min_evidences are not written. An evidence that reaches a document
    end (or an earlier evidence) may stop early: nothing else is legal there.
    `bonus` is aligned with `continuations` and kept on them; the stop tokens get
    `stop_bonus` (the sentence-end rule)."""
    if budget.remaining < config.force_end_margin:
        return Allowed.only(evidence_end)
    if budget.must_open_new:
        stoppers = [sep]
    else:
        stoppers = [evidence_end] + ([sep] if budget.may_open_new else [])
    if budget.evidence_length >= config.max_evidence_tokens:
        return Allowed(np.asarray(stoppers, dtype=np.int64))
    may_stop = budget.evidence_length >= config.min_evidence_tokens
    if continuations is None:
        banned = free_banned if may_stop else np.concatenate([free_banned, stoppers])
        return Allowed(None, banned=np.asarray(banned, dtype=np.int64))
    if not may_stop and continuations.size:
        return Allowed(continuations, bonus)
    ids = np.concatenate([continuations, np.asarray(stoppers, dtype=np.int64)])
    if bonus is not None or stop_bonus:
        head = bonus if bonus is not None else np.zeros(continuations.size)
        bonus = np.concatenate([head, np.full(len(stoppers), float(stop_bonus))])
    return Allowed(ids, bonus)


# -------------------------------------------------------------------------- answer
def answer_rule(
    evidences: list[list[int]],
    answer: list[int],
    stop_ids: np.ndarray,
    period_ids: np.ndarray,
    free_banned: np.ndarray = _NO_IDS,
    canon: np.ndarray | None = None,
) -> Allowed:
    """The answer copies a span of the written evidence: its first token is any evidence
    token, each next one follows the answer so far somewhere in one evidence. Once it has
    a token it may end the way the training target does (" X." then a stop id): a period
    (unless it just wrote one) or a stop id. No evidence written: the answer is free
    (every id but free_banned). With `canon` (token id -> id of its class, see
    `token_classes`), tokens match by class: " Luge" copies "luge" of the evidence."""
    if not any(evidences):
        return Allowed(None, banned=free_banned)
    if canon is None:
        rows, said = [np.asarray(e, dtype=np.int64) for e in evidences], list(answer)
    else:
        rows = [canon[np.asarray(e, dtype=np.int64)] for e in evidences]
        said = canon[np.asarray(answer, dtype=np.int64)].tolist()
    n = len(said)
    following = [row[n:][[row[s : s + n].tolist() == said for s in range(row.size - n)]]
                 for row in rows]  # fmt: skip
    nxt = np.unique(np.concatenate(following))
    ids = nxt if canon is None else np.flatnonzero(np.isin(canon, nxt))
    ids = drop_ids(ids.astype(np.int64), free_banned)
    if not n:
        return Allowed(ids)
    enders = [stop_ids] if answer[-1] in period_ids else [stop_ids, period_ids]
    return Allowed(np.unique(np.concatenate([ids, *enders]).astype(np.int64)))


def token_classes(texts: list[str]) -> np.ndarray:
    """canon[id]: the smallest id whose text equals this one's up to a leading space and
    the case of its first letter (the answer's " Cesium" is the evidence's "cesium");
    blank tokens and partial UTF-8 bytes stay classes of their own."""
    first: dict[str, int] = {}
    canon = np.empty(len(texts), dtype=np.int64)
    for token_id, text in enumerate(texts):
        bare = text.lstrip(" ")
        if not bare or "\ufffd" in text:  # a lone byte of a longer character: its own class
            canon[token_id] = token_id
            continue
        canon[token_id] = first.setdefault(bare[:1].lower() + bare[1:], token_id)
    return canon


# ------------------------------------------------------------ eq. 12 window bonus
def window_next(table: WindowTable, hits: np.ndarray, depth: int) -> np.ndarray:
    """Token after each hit's prefix (-1 where the window ends). A hit is only kept while
    its window matches the whole prefix, so hits + depth never passes the window's -1."""
    return table.tokens[hits + depth] if hits.size else _NO_IDS


def forward_bonus(
    table: WindowTable, hits: np.ndarray, depth: int, allowed_ids: np.ndarray, lam: float
) -> np.ndarray:
    """Eq. 12: bonus[j] = lam * max S(w) over kept windows w that contain the prefix
    extended by allowed_ids[j]; 0 where no window does. allowed_ids must be ascending."""
    bonus = np.zeros(allowed_ids.shape[0], dtype=np.float64)
    nxt = window_next(table, hits, depth)
    valid = nxt >= 0
    if not valid.any():
        return bonus
    tokens = nxt[valid]
    scores = table.scores[table.window_of[hits[valid]]]
    order = np.lexsort((-scores, tokens))  # by token, best window first
    tokens, scores = tokens[order], scores[order]
    first = np.ones(tokens.shape[0], dtype=bool)
    first[1:] = tokens[1:] != tokens[:-1]
    tokens, scores = tokens[first], scores[first]
    where = np.searchsorted(allowed_ids, tokens)
    inside = where < allowed_ids.shape[0]
    inside[inside] = allowed_ids[where[inside]] == tokens[inside]
    bonus[where[inside]] = lam * scores[inside]
    return bonus


def advance_hits(table: WindowTable, hits: np.ndarray, depth: int, token: int) -> np.ndarray:
    """Hits that still match after the prefix (length depth) is extended by token."""
    if not hits.size:
        return hits
    return hits[table.tokens[hits + depth] == token]


def steering_window(table: WindowTable, hits: np.ndarray) -> int | None:
    """The best-scored kept window among those the prefix still lies in (None: none)."""
    if not hits.size:
        return None
    owners = np.unique(table.window_of[hits])
    owners = owners[owners >= 0]
    if not owners.size:
        return None
    return int(owners[np.argmax(table.scores[owners])])


def clear_continuations(
    positions: np.ndarray, following: np.ndarray, depth: int, used: list[tuple[int, int]]
) -> np.ndarray:
    """Distinct next ids of a prefix that occurs at `positions` (ascending) with
    `following` the id after each (-1 at a document end), keeping only occurrences whose
    extended span [p, p + depth + 1) overlaps none of the `used` spans."""
    ok = following >= 0
    for start, end in used:
        ok &= ~((positions < end) & (start < positions + depth + 1))
    return np.unique(following[ok])


def window_continuations(table: WindowTable, hits: np.ndarray, depth: int) -> np.ndarray:
    """Distinct tokens that extend the prefix inside the windows (hard windows, U)."""
    nxt = window_next(table, hits, depth)
    return np.unique(nxt[nxt >= 0])


def hard_window_start_hits(table: WindowTable, window: int, fraction: float) -> np.ndarray:
    """U: evidence i starts in the first fifth of window i (at least its first token)."""
    start = int(table.starts[window])
    end = int(table.starts[window + 1]) - 1 if window + 1 < len(table) else table.tokens.size - 1
    head = max(1, int((end - start - 1) * fraction + 1e-9))
    return np.arange(start, start + min(head, end - start), dtype=np.int64)

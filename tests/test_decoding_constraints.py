"""Unit tests of the next-token rules and the eq. 12 bonus, with hand-made logits/windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.constraints import (
    Allowed,
    EvidenceBudget,
    advance_hits,
    answer_rule,
    clue_rule,
    evidence_rule,
    forward_bonus,
    hard_window_start_hits,
    masked_logits,
    pick,
    token_classes,
    window_continuations,
)
from retrollm.decoding.state import WindowTable

SEP, CLUE_END, EVIDENCE_END = 90, 91, 93
CONFIG = DecodeConfig()


def ids(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


# --------------------------------------------------------------------- eq. 12
def test_bonus_changes_the_choice_toward_the_better_window() -> None:
    # Token 7 has the higher logit but only occurs in the weak window; token 5 leads into
    # the strong window. Without the bonus 7 wins; with lambda * S(w) token 5 wins.
    table = WindowTable.build([ids(1, 5, 6), ids(1, 7, 8)], [0.9, 0.1])
    logits = np.zeros(100)
    logits[7], logits[5] = 10.0, 0.0
    allowed = ids(5, 7)
    hits = table.all_hits()
    hits = advance_hits(table, hits, 0, 1)  # prefix [1] occurs at the start of both windows
    bonus = forward_bonus(table, hits, 1, allowed, lam=100.0)
    assert bonus.tolist() == pytest.approx([90.0, 10.0])
    assert pick(logits, Allowed(allowed)) == 7
    assert pick(logits, Allowed(allowed, bonus)) == 5


def test_bonus_takes_the_max_over_windows_and_skips_tokens_in_no_window() -> None:
    table = WindowTable.build([ids(3, 4), ids(3, 4), ids(3, 9)], [0.2, 0.7, 0.5])
    hits = advance_hits(table, table.all_hits(), 0, 3)
    bonus = forward_bonus(table, hits, 1, ids(4, 6, 9), lam=10.0)
    assert bonus.tolist() == pytest.approx([7.0, 0.0, 5.0])


def test_bonus_is_zero_once_the_prefix_leaves_every_window() -> None:
    table = WindowTable.build([ids(1, 2)], [1.0])
    hits = advance_hits(table, table.all_hits(), 0, 2)
    hits = advance_hits(table, hits, 1, 2)  # [2, 2] occurs in no window
    assert hits.size == 0
    assert forward_bonus(table, hits, 2, ids(1, 2), 100.0).tolist() == [0.0, 0.0]


def test_window_end_gives_no_continuation() -> None:
    table = WindowTable.build([ids(1, 2), ids(2, 3)], [1.0, 1.0])
    hits = advance_hits(table, table.all_hits(), 0, 2)
    assert window_continuations(table, hits, 1).tolist() == [3]


def test_masked_logits_is_minus_infinity_outside_and_adds_the_bonus() -> None:
    logits = np.arange(6, dtype=np.float32)
    row = masked_logits(logits, Allowed(ids(1, 4), np.array([10.0, 0.0])))
    assert row[1] == 11.0 and row[4] == 4.0
    assert np.isneginf(np.delete(row, [1, 4])).all()


# ----------------------------------------------------------------------- clues
def test_clue_may_close_only_after_min_tokens_and_must_close_at_max() -> None:
    cont = ids(3, 4)
    assert clue_rule(cont, 1, 0, CONFIG, SEP, CLUE_END).ids.tolist() == [3, 4]
    assert set(clue_rule(cont, 2, 0, CONFIG, SEP, CLUE_END).ids) == {3, 4, SEP, CLUE_END}
    full = clue_rule(cont, CONFIG.max_clue_tokens, 0, CONFIG, SEP, CLUE_END)
    assert set(full.ids) == {SEP, CLUE_END}


def test_last_clue_closes_the_block() -> None:
    rule = clue_rule(ids(3), 2, CONFIG.max_clues - 1, CONFIG, SEP, CLUE_END)
    assert SEP not in rule.ids and CLUE_END in rule.ids


def test_clue_dead_end_may_close_early() -> None:
    assert set(clue_rule(ids(), 1, 0, CONFIG, SEP, CLUE_END).ids) == {SEP, CLUE_END}


def test_unconstrained_clue_bans_closers_while_short() -> None:
    rule = clue_rule(None, 0, 0, CONFIG, SEP, CLUE_END, ids(2))
    assert rule.ids is None and {2, SEP, CLUE_END} <= set(rule.banned)


# -------------------------------------------------------------------- evidence
def budget(length: int, generated: int = 100, done: int = 0, cap: int = 5) -> EvidenceBudget:
    return EvidenceBudget.of(length, generated, done, cap, CONFIG)


def test_evidence_stops_only_after_min_tokens() -> None:
    cont = ids(3, 4)
    short = evidence_rule(cont, budget(CONFIG.min_evidence_tokens - 1), CONFIG, SEP, EVIDENCE_END)
    assert short.ids.tolist() == [3, 4]
    ready = evidence_rule(cont, budget(CONFIG.min_evidence_tokens), CONFIG, SEP, EVIDENCE_END)
    assert set(ready.ids) == {3, 4, SEP, EVIDENCE_END}


def test_evidence_only_stops_after_max_tokens() -> None:
    rule = evidence_rule(ids(3), budget(CONFIG.max_evidence_tokens), CONFIG, SEP, EVIDENCE_END)
    assert set(rule.ids) == {SEP, EVIDENCE_END}


def test_evidence_end_forced_when_budget_nearly_spent() -> None:
    generated = CONFIG.budget_tokens - CONFIG.force_end_margin + 1
    rule = evidence_rule(ids(3), budget(1, generated), CONFIG, SEP, EVIDENCE_END)
    assert rule.ids.tolist() == [EVIDENCE_END]


def test_no_new_evidence_without_windows_or_budget() -> None:
    length = CONFIG.min_evidence_tokens
    last = evidence_rule(ids(3), budget(length, done=4, cap=5), CONFIG, SEP, EVIDENCE_END)
    assert SEP not in last.ids and EVIDENCE_END in last.ids
    low = CONFIG.budget_tokens - CONFIG.new_evidence_min_budget + 1
    poor = evidence_rule(ids(3), budget(length, low), CONFIG, SEP, EVIDENCE_END)
    assert SEP not in poor.ids


def test_document_end_allows_an_early_stop() -> None:
    rule = evidence_rule(ids(), budget(3), CONFIG, SEP, EVIDENCE_END)
    assert set(rule.ids) == {SEP, EVIDENCE_END}


def test_bonus_survives_the_stop_tokens() -> None:
    rule = evidence_rule(
        ids(3), budget(CONFIG.min_evidence_tokens), CONFIG, SEP, EVIDENCE_END, np.array([5.0])
    )
    assert rule.bonus.tolist() == [5.0, 0.0, 0.0]


def test_hard_window_starts_in_the_first_fifth() -> None:
    table = WindowTable.build([np.arange(10, 21), np.arange(30, 36)], [1.0, 0.5])
    head = hard_window_start_hits(table, 0, 0.2)
    assert table.tokens[head].tolist() == [10, 11]
    assert table.tokens[hard_window_start_hits(table, 1, 0.2)].tolist() == [30]


def test_min_evidences_leaves_only_the_separator() -> None:
    config = DecodeConfig(min_evidences=3, max_evidences=5)
    budget = EvidenceBudget.of(70, 100, 0, 5, config, windows_left=2)
    assert budget.must_open_new
    allowed = evidence_rule(ids(4, 5), budget, config, SEP, EVIDENCE_END)
    assert SEP in allowed.ids and EVIDENCE_END not in allowed.ids
    # Third evidence written, or no unused window left: <|/evidence|> may end the block.
    assert not EvidenceBudget.of(70, 100, 2, 5, config, windows_left=2).must_open_new
    done = EvidenceBudget.of(70, 100, 0, 5, config, windows_left=0)
    assert not done.must_open_new and not done.may_open_new


def test_stop_tokens_get_the_sentence_end_bonus() -> None:
    budget = EvidenceBudget.of(70, 100, 0, 5, CONFIG)
    allowed = evidence_rule(ids(4, 5), budget, CONFIG, SEP, EVIDENCE_END, np.array([20.0, 0.0]),
                            stop_bonus=20.0)  # fmt: skip
    bonus = dict(zip(allowed.ids.tolist(), allowed.bonus.tolist(), strict=True))
    assert bonus[EVIDENCE_END] == bonus[SEP] == bonus[4] == 20.0 and bonus[5] == 0.0


def test_continuations_skip_occurrences_that_run_into_an_earlier_evidence() -> None:
    from retrollm.decoding.constraints import clear_continuations, steering_window

    positions, following = ids(10, 50, 90), ids(7, 8, 9)
    # depth 2: occurrence 50 covers [50, 53) with its next token, overlapping [52, 60).
    assert clear_continuations(positions, following, 2, [(52, 60)]).tolist() == [7, 9]
    assert clear_continuations(positions, ids(7, -1, 9), 2, []).tolist() == [7, 9]
    table = WindowTable.build([ids(1, 5, 6), ids(1, 7, 8)], [0.3, 0.9])
    assert steering_window(table, advance_hits(table, table.all_hits(), 0, 1)) == 1
    assert steering_window(table, ids()) is None


# ---------------------------------------------------------------------- answer
STOP, PERIOD = ids(99), ids(13)


def test_answer_starts_at_any_evidence_token_and_follows_its_span() -> None:
    evidences = [[1, 2, 3, 2, 4], [5, 2, 6]]
    first = answer_rule(evidences, [], STOP, PERIOD, ids(SEP))
    assert first.ids.tolist() == [1, 2, 3, 4, 5, 6]  # no ender before the first token
    after_two = answer_rule(evidences, [2], STOP, PERIOD)
    assert after_two.ids.tolist() == [3, 4, 6, 13, 99]  # every token that follows a 2
    assert answer_rule(evidences, [2, 4], STOP, PERIOD).ids.tolist() == [13, 99]  # span end


def test_a_period_ends_the_answer_once_and_no_evidence_leaves_it_free() -> None:
    assert answer_rule([[1, 13, 2]], [1, 13], STOP, PERIOD).ids.tolist() == [2, 99]
    assert answer_rule([[1, 2]], [1, 13], STOP, PERIOD).ids.tolist() == [99]
    free = answer_rule([[]], [], STOP, PERIOD, ids(SEP))
    assert free.ids is None and free.banned.tolist() == [SEP]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 5), max_size=8), min_size=1, max_size=3),
    st.lists(st.integers(0, 5), min_size=1, max_size=3),
)
def test_answer_rule_allows_exactly_the_tokens_that_keep_a_span(
    evidences: list[list[int]], answer: list[int]
) -> None:
    # Brute-force twin: a token is allowed iff answer + [token] is a substring of an evidence.
    spans = {
        tuple(e[i:j]) for e in evidences for i in range(len(e)) for j in range(i + 1, len(e) + 1)
    }
    rule = answer_rule(evidences, answer, STOP, PERIOD)
    if not spans:
        assert rule.ids is None  # nothing written: the answer is free
        return
    expected = {t for t in range(6) if (*answer, t) in spans}
    assert set(rule.ids.tolist()) - {13, 99} == expected
    assert 99 in rule.ids  # a started answer may always stop


def test_token_classes_join_case_and_leading_space_variants_only() -> None:
    texts = ["cesium", " Cesium", "Cesium", " cesium", " ", "\ufffd", "\ufffd", "CESIUM"]
    assert token_classes(texts).tolist() == [0, 0, 0, 0, 4, 5, 6, 7]


def test_answer_matching_by_class_copies_a_differently_cased_span() -> None:
    canon = token_classes(["luge", " Luge", " is", " fast", " Is", "x"])
    evidences = [[5, 0, 2, 3]]  # "x" "luge" " is" " fast"
    first = answer_rule(evidences, [], STOP, PERIOD, canon=canon)
    assert first.ids.tolist() == [0, 1, 2, 3, 4, 5]  # " Luge" and " Is" join their classes
    assert answer_rule(evidences, [1], STOP, PERIOD, canon=canon).ids.tolist() == [2, 4, 13, 99]
    assert answer_rule(evidences, [1], STOP, PERIOD).ids.tolist() == [13, 99]  # by id: no span

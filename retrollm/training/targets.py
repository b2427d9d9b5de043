"""Target sequences in RetroLLM's output format, and the proof that they are reachable.

    prompt <|clue|> c1 <|sep|> c2 <|/clue|> <|evidence|> e1 <|sep|> e2 <|/evidence|>
    " The answer is" " X." EOS

Clues and evidences are inserted as *corpus token ids*, never re-tokenized text: the
decoder's constraint allows exactly the token sequences that occur in the index, and the
same words can tokenize differently in isolation than inside a document. " The answer is"
is encoded on its own, as the decoder forces it; the answer " X." follows as free text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrollm.training.masks import (
    ANSWER,
    CLUE,
    PROMPT,
    STRUCTURE,
    evidence_roles,
    weights_from_roles,
)


class UnreachableTargetError(AssertionError):
    """A target the constrained decoder could never produce (a bug, never a data issue)."""


@dataclass(frozen=True)
class Special:
    """The ids a target needs besides text: RetroLLM's five tokens and end-of-sequence."""

    clue: int
    clue_end: int
    evidence: int
    evidence_end: int
    sep: int
    eos: int

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(
            (self.clue, self.clue_end, self.evidence, self.evidence_end, self.sep, self.eos)
        )


@dataclass(frozen=True)
class Sequence_:
    """Token ids and one role character per token."""

    input_ids: list[int]
    roles: str

    def weights(self, gamma: float) -> list[float]:
        return weights_from_roles(self.roles, gamma)


def answer_text(answer: str) -> str:
    """ " X." as the target writes it: one leading space, a closing period unless present."""
    answer = answer.strip()
    return f" {answer}" if answer.endswith((".", "!", "?")) else f" {answer}."


def build_sequence(
    prompt: Sequence[int],
    clues: Sequence[Sequence[int]],
    evidences: Sequence[Sequence[int]],
    answer_prefix_ids: Sequence[int],
    answer_ids: Sequence[int],
    special: Special,
    keep_fraction: float,
) -> Sequence_:
    """Assemble prompt and target with roles; evidence middles get the masked role."""
    ids: list[int] = list(prompt)
    roles = [PROMPT * len(prompt)]

    def put(tokens: Sequence[int], role: str) -> None:
        ids.extend(int(t) for t in tokens)
        roles.append(role * len(tokens) if len(role) == 1 else role)

    put([special.clue], STRUCTURE)
    for i, clue in enumerate(clues):
        if i:
            put([special.sep], STRUCTURE)
        put(clue, CLUE)
    put([special.clue_end, special.evidence], STRUCTURE)
    for i, evidence in enumerate(evidences):
        if i:
            put([special.sep], STRUCTURE)
        put(evidence, evidence_roles(len(evidence), keep_fraction))
    put([special.evidence_end], STRUCTURE)
    put(answer_prefix_ids, STRUCTURE)
    put([*answer_ids, special.eos], ANSWER)
    return Sequence_(ids, "".join(roles))


@dataclass(frozen=True)
class ParsedTarget:
    """A target split back into its parts by the special tokens."""

    clues: list[list[int]]
    evidences: list[list[int]]
    tail: list[int]


def parse_target(target: Sequence[int], special: Special) -> ParsedTarget:
    """Split a target (everything after the prompt) into clues, evidences and the rest.

    Raises UnreachableTargetError when it does not follow the output format, so a
    malformed sequence can never reach training.
    """
    t = [int(x) for x in target]

    def expect(position: int, token: int, name: str) -> None:
        if position >= len(t) or t[position] != token:
            found = t[position] if position < len(t) else "end"
            raise UnreachableTargetError(f"expected {name} at target position {position}: {found}")

    def section(start: int, end_token: int) -> tuple[list[list[int]], int]:
        parts: list[list[int]] = [[]]
        for position in range(start, len(t)):
            token = t[position]
            if token == end_token:
                return ([] if parts == [[]] else parts), position + 1
            if token == special.sep:
                parts.append([])
            else:
                parts[-1].append(token)
        raise UnreachableTargetError("section is not closed")

    expect(0, special.clue, "<|clue|>")
    clues, after = section(1, special.clue_end)
    expect(after, special.evidence, "<|evidence|>")
    evidences, after = section(after + 1, special.evidence_end)
    return ParsedTarget(clues, evidences, t[after:])


@dataclass(frozen=True)
class Limits:
    """The decoder's length rules a target must obey (decode: section of params.yaml)."""

    max_clues: int = 5
    clue_min_tokens: int = 2
    clue_max_tokens: int = 7
    max_evidences: int = 5
    evidence_min_tokens: int = 64
    evidence_max_tokens: int = 160


def assert_reachable(
    input_ids: Sequence[int],
    prompt_length: int,
    evidence_docs: Sequence[int],
    index: object,
    special: Special,
    limits: Limits = Limits(),
    short_ok: Sequence[bool] | None = None,
) -> None:
    """Check a target against the decoder's constraints, from its token ids alone.

    Corpus-level: every clue occurs in the corpus. Document-level: evidence i occurs
    inside document evidence_docs[i] (the decoder allows continuations inside candidate
    documents). Length rules: clue and evidence counts and lengths within `limits`, where
    a shorter evidence is allowed only if it ends its document or `short_ok` says it ends
    where an earlier evidence starts (the decoder may stop there, as nothing else is
    legal). Nothing in clues or evidences is a special token. `index` is a CorpusIndex.
    """
    parsed = parse_target(input_ids[prompt_length:], special)
    forbidden = special.ids
    if len(parsed.clues) > limits.max_clues:
        raise UnreachableTargetError(f"{len(parsed.clues)} clues > {limits.max_clues}")
    for number, clue in enumerate(parsed.clues):
        if forbidden.intersection(clue):
            raise UnreachableTargetError(f"clue {number} holds a special token")
        if not limits.clue_min_tokens <= len(clue) <= limits.clue_max_tokens:
            raise UnreachableTargetError(f"clue {number} has {len(clue)} tokens")
        if index.count(clue) < 1:  # type: ignore[attr-defined]
            raise UnreachableTargetError(f"clue {number} {clue} does not occur in the corpus")
    if len(parsed.evidences) != len(evidence_docs):
        raise UnreachableTargetError(
            f"{len(parsed.evidences)} evidences in the target, {len(evidence_docs)} documents"
        )
    if len(parsed.evidences) > limits.max_evidences:
        raise UnreachableTargetError(f"{len(parsed.evidences)} evidences > {limits.max_evidences}")
    for number, (evidence, doc) in enumerate(zip(parsed.evidences, evidence_docs, strict=True)):
        if not evidence or forbidden.intersection(evidence):
            raise UnreachableTargetError(f"evidence {number} is empty or holds a special token")
        if len(evidence) > limits.evidence_max_tokens:
            raise UnreachableTargetError(f"evidence {number} has {len(evidence)} tokens")
        positions = np.asarray(index.locate(evidence), dtype=np.int64)  # type: ignore[attr-defined]
        docs = index.doc_of(positions) if positions.size else positions  # type: ignore[attr-defined]
        inside = positions[docs == doc]
        if inside.size == 0:
            found = sorted(set(docs.tolist()))[:5]
            raise UnreachableTargetError(
                f"evidence {number} does not occur in its document {doc} (found in {found})"
            )
        doc_end = int(index.doc_offsets[doc + 1])  # type: ignore[attr-defined]
        ends_doc = bool(np.any(inside + len(evidence) == doc_end))
        excused = short_ok is not None and short_ok[number]
        if len(evidence) < limits.evidence_min_tokens and not ends_doc and not excused:
            raise UnreachableTargetError(
                f"evidence {number} has {len(evidence)} < {limits.evidence_min_tokens} tokens "
                "and does not end its document"
            )

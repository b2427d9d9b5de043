"""Print training examples with their loss mask marked, so a person can check them.

    python -m retrollm.training.show [--trainset data/train] [-n 3] [--id ID ...] [--tokens]

Marks (plain text, so it survives pipes and logs):
    ⟦...⟧  in the input, excluded from the loss (the middle of an evidence)
    «...»  weight gamma (the answer and end-of-sequence)
    other target text has weight 1; the prompt is shown apart, never in the loss.
`--tokens` also lists every target token with its role and weight.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

from retrollm.artifacts import read_manifest, read_records
from schemas.training import ROLE_CHARS, TrainExample

MARKS = {"m": ("⟦", "⟧"), "a": ("«", "»")}


def marked_target(example: TrainExample, tokenizer: Any) -> str:
    """The target as text, each run of masked or answer tokens wrapped in its marks."""
    pairs = list(zip(example.input_ids, example.roles, strict=True))[example.prompt_length :]
    out = []
    for role, run in groupby(pairs, key=lambda pair: pair[1]):
        text = tokenizer.decode([token for token, _ in run], skip_special_tokens=False)
        left, right = MARKS.get(role, ("", ""))
        out.append(f"{left}{text}{right}")
    return "".join(out)


def token_table(example: TrainExample, tokenizer: Any) -> Iterator[str]:
    start = example.prompt_length
    for position in range(start, len(example.input_ids)):
        token = example.input_ids[position]
        piece = tokenizer.decode([token], skip_special_tokens=False)
        role, weight = example.roles[position], example.weights[position]
        yield f"  {position:4d} {token:7d} {role} w={weight:<4g} {piece!r}"


def render(example: TrainExample, tokenizer: Any, tokens: bool = False) -> str:
    prompt = tokenizer.decode(example.input_ids[: example.prompt_length], skip_special_tokens=False)
    target = example.roles[example.prompt_length :]
    lines = [
        f"=== {example.dataset} {example.id}: {example.question}",
        f"gold answers: {example.golden_answers}   written answer: {example.answer!r}",
        "clues: " + ", ".join(f"{c.text!r} ({c.source}, w={c.weight:.2f})" for c in example.clues),
    ]
    for number, evidence in enumerate(example.evidences, start=1):
        flag = "RELEVANT" if evidence.relevant else "-"
        lines.append(
            f"evidence {number}: doc {evidence.doc_index} [{evidence.start}, {evidence.end}) "
            f"score {evidence.score:.3f} {flag}"
        )
    lines += [
        f"tokens: {len(example.input_ids)} (prompt {example.prompt_length}, target {len(target)}, "
        f"masked {target.count('m')}, answer {target.count('a')})",
        f"--- prompt (no loss):\n{prompt}",
        f"--- target:\n{marked_target(example, tokenizer)}",
    ]
    if tokens:
        lines += ["--- target tokens (position, id, role, weight, text):"]
        lines += list(token_table(example, tokenizer))
    return "\n".join(lines)


def pick(examples: Iterable[TrainExample], n: int, ids: list[str]) -> list[TrainExample]:
    if ids:
        wanted = set(ids)
        return [e for e in examples if e.id in wanted]
    out = []
    for example in examples:
        out.append(example)
        if len(out) >= n:
            break
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainset", type=Path, default=Path("data/train"))
    parser.add_argument("--model", type=Path, default=None, help="default: the trainset's model")
    parser.add_argument("-n", type=int, default=3, help="how many examples (from the start)")
    parser.add_argument("--id", action="append", default=[], help="show these example ids")
    parser.add_argument("--tokens", action="store_true", help="also list every target token")
    args = parser.parse_args(argv)

    from retrollm.models import load_tokenizer

    manifest = read_manifest(args.trainset, "trainset")
    model = args.model or Path(manifest.inputs["model"].path)
    tokenizer = load_tokenizer(model)
    examples = pick(read_records(args.trainset / "train.msgpack", TrainExample), args.n, args.id)
    print("roles: " + "; ".join(f"{k} = {v}" for k, v in ROLE_CHARS.items()))
    print("marks: ⟦masked: in the input, no loss⟧  «answer: weight gamma»\n")
    for example in examples:
        print(render(example, tokenizer, args.tokens) + "\n")


if __name__ == "__main__":
    main()

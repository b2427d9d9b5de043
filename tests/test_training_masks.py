"""Loss masks, weights, sequence layout and the collator, on hand-made examples."""

from __future__ import annotations

import pytest
import torch

from retrollm.training.data import IGNORE_INDEX, Collator, TrainDataset
from retrollm.training.loop import weighted_nll
from retrollm.training.masks import (
    evidence_roles,
    kept_at_each_end,
    masked_share,
    weights_from_roles,
)
from retrollm.training.targets import (
    Special,
    UnreachableTargetError,
    answer_text,
    build_sequence,
    parse_target,
)

SPECIAL = Special(clue=90, clue_end=91, evidence=92, evidence_end=93, sep=94, eos=2)


@pytest.mark.parametrize(
    ("n", "fraction", "kept"),
    [(30, 0.1, 3), (25, 0.1, 3), (10, 0.1, 1), (1, 0.1, 1), (0, 0.1, 0), (40, 0.0, 0)],
)
def test_kept_at_each_end(n: int, fraction: float, kept: int) -> None:
    assert kept_at_each_end(n, fraction) == kept


def test_evidence_roles_mask_the_middle_80_percent() -> None:
    assert evidence_roles(10, 0.1) == "e" + "m" * 8 + "e"
    assert evidence_roles(30, 0.1) == "eee" + "m" * 24 + "eee"
    assert evidence_roles(3, 0.1) == "eme"
    assert evidence_roles(2, 0.1) == "ee"
    assert evidence_roles(8, 0.5) == "e" * 8
    assert evidence_roles(5, 0.0) == "mmmmm"
    with pytest.raises(ValueError):
        kept_at_each_end(10, 0.6)


def test_weights_follow_roles() -> None:
    assert weights_from_roles("pscema", 2.0) == [0.0, 1.0, 1.0, 1.0, 0.0, 2.0]
    assert masked_share("ppeemmma") == pytest.approx(3 / 6)
    with pytest.raises(ValueError):
        weights_from_roles("px", 2.0)


def test_sequence_layout_roles_and_weights() -> None:
    prompt = [1, 5, 6]
    clues = [[10, 11], [12]]
    evidences = [list(range(20, 30)), [40, 41]]
    sequence = build_sequence(prompt, clues, evidences, [70, 71], [80], SPECIAL, 0.1)
    assert sequence.input_ids == [
        1, 5, 6,
        90, 10, 11, 94, 12, 91,
        92, *range(20, 30), 94, 40, 41, 93,
        70, 71, 80, 2,
    ]  # fmt: skip
    assert (
        sequence.roles
        == "ppp" + "scc" + "scs" + "s" + "e" + "m" * 8 + "e" + "s" + "ee" + "s" + "ss" + "aa"
    )
    weights = sequence.weights(2.0)
    assert weights[:3] == [0.0, 0.0, 0.0]
    assert weights[-2:] == [2.0, 2.0]  # answer and end-of-sequence
    assert sum(w == 0.0 for w in weights) == 3 + 8  # prompt and the masked middle
    parsed = parse_target(sequence.input_ids[3:], SPECIAL)
    assert parsed.clues == clues and parsed.evidences == evidences
    assert parsed.tail == [70, 71, 80, 2]


def test_parse_rejects_malformed_targets() -> None:
    with pytest.raises(UnreachableTargetError):
        parse_target([10, 91], SPECIAL)  # no <|clue|>
    with pytest.raises(UnreachableTargetError):
        parse_target([90, 10, 91, 92, 20], SPECIAL)  # evidence never closed
    assert parse_target([90, 10, 91, 92, 93], SPECIAL).evidences == []


def test_answer_text() -> None:
    assert answer_text("Paris") == " Paris."
    assert answer_text(" St. Louis, Mo. ") == " St. Louis, Mo."


def test_collator_pads_and_masks_labels() -> None:
    items = TrainDataset(
        [([1, 2, 3], [0.0, 1.0, 2.0]), ([4, 5], [0.0, 1.0])], seed=0, shuffle=False
    )
    right = Collator(pad_id=0)([items[0], items[1]])
    assert right["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0]]
    assert right["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [IGNORE_INDEX, 5, IGNORE_INDEX]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert right["position_ids"].tolist() == [[0, 1, 2], [0, 1, 1]]
    left = Collator(pad_id=0, padding_side="left")([items[0], items[1]])
    assert left["input_ids"].tolist() == [[1, 2, 3], [0, 4, 5]]
    assert left["weights"].tolist() == [[0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]
    assert left["position_ids"].tolist() == [[0, 1, 2], [0, 0, 1]]
    with pytest.raises(ValueError):
        Collator(pad_id=0, padding_side="middle")


def test_dataset_order_depends_on_seed_and_epoch_only() -> None:
    data = [([i, i], [0.0, 1.0]) for i in range(20)]
    a, b = TrainDataset(data, seed=3), TrainDataset(data, seed=3)
    first = [int(a[i]["input_ids"][0]) for i in range(20)]
    assert first == [int(b[i]["input_ids"][0]) for i in range(20)]
    a.set_epoch(1)
    assert [int(a[i]["input_ids"][0]) for i in range(20)] != first
    assert sorted(first) == list(range(20))
    grouped = TrainDataset([([0] * (i + 2), [0.0] * (i + 2)) for i in range(20)], 3, True, 8)
    lengths = [len(grouped[i]["input_ids"]) for i in range(20)]
    assert sorted(lengths) == list(range(2, 22))
    for lo in (0, 8, 16):
        assert lengths[lo : lo + 8] == sorted(lengths[lo : lo + 8], reverse=True)


def test_weighted_nll_by_hand() -> None:
    # Uniform logits over 4 tokens: every NLL is ln 4; weights 1 and 2 on the targets.
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[IGNORE_INDEX, 1, 2]])
    weights = torch.tensor([[0.0, 1.0, 2.0]])
    total = weighted_nll(logits, labels, weights)
    assert float(total) == pytest.approx(3 * torch.log(torch.tensor(4.0)).item())


def test_padding_side_does_not_change_the_loss(tiny_model_and_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from retrollm.training.loop import forward_sum

    model, _ = tiny_model_and_tokenizer
    data = TrainDataset([([5, 6, 7, 8, 9], [0, 1, 1, 2, 2]), ([10, 11, 12], [0, 1, 2])], 0, False)
    items = [data[0], data[1]]
    with torch.no_grad():
        right = forward_sum(model, Collator(0, "right")(items))
        left = forward_sum(model, Collator(0, "left")(items))
    assert float(right) == pytest.approx(float(left), rel=1e-5)


def test_selected_logits_give_the_full_weighted_loss(tiny_model_and_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from retrollm.training.loop import forward_sum

    model, _ = tiny_model_and_tokenizer
    data = TrainDataset([([5, 6, 7, 8, 9], [0, 1, 0, 2, 2]), ([10, 11, 12], [0, 0, 2])], 0, False)
    batch = Collator(0)([data[0], data[1]])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        full = weighted_nll(logits, batch["labels"], batch["weights"])
        selected = forward_sum(model, batch)
    assert float(selected) == pytest.approx(float(full), rel=1e-5)

"""Training examples as tensors: a dataset with a seeded per-epoch order, and a collator.

The order lives in the dataset (not in a shuffling sampler), so it depends only on
(seed, epoch): the same under `accelerate launch` on any number of processes, and a
resumed run can skip exactly the batches already seen. Optionally the shuffled order is
sorted by length inside blocks of `group_size` examples, so a batch holds similar lengths
and little padding (most of the compute on a CPU) while the order stays random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100  # what torch's cross_entropy and Hugging Face losses skip


class TrainDataset(Dataset):
    """(input_ids, weights) pairs, visited in a fixed permutation per epoch."""

    def __init__(
        self,
        examples: Sequence[tuple[Sequence[int], Sequence[float]]],
        seed: int,
        shuffle: bool = True,
        group_size: int = 0,
    ) -> None:
        self.examples = [
            (torch.tensor(ids, dtype=torch.long), torch.tensor(w, dtype=torch.float32))
            for ids, w in examples
        ]
        self.lengths = np.array([len(ids) for ids, _ in examples], dtype=np.int64)
        self.seed = seed
        self.shuffle = shuffle
        self.group_size = group_size
        self.order = np.arange(len(self.examples))
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix the visiting order of `epoch` (accelerate's dataloaders call this too)."""
        if not self.shuffle:
            return
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
        if self.group_size > 1:
            blocks = [order[i : i + self.group_size] for i in range(0, len(order), self.group_size)]
            order = np.concatenate(
                [block[np.argsort(-self.lengths[block], kind="stable")] for block in blocks]
            )
        self.order = order

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids, weights = self.examples[int(self.order[i])]
        return {"input_ids": ids, "weights": weights}


@dataclass(frozen=True)
class Collator:
    """Pads a batch; labels are the input ids with IGNORE_INDEX wherever the weight is 0.

    Right padding is the training default (positions match an unpadded run); left padding
    is offered for models or kernels that want it; positions are counted from each row's
    first real token, so both give the same loss. Padding gets weight 0 and attention 0.
    """

    pad_id: int
    padding_side: str = "right"

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(int(item["input_ids"].shape[0]) for item in items)
        batch = len(items)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        weights = torch.zeros((batch, width), dtype=torch.float32)
        attention = torch.zeros((batch, width), dtype=torch.long)
        for row, item in enumerate(items):
            n = int(item["input_ids"].shape[0])
            cols = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            input_ids[row, cols] = item["input_ids"]
            weights[row, cols] = item["weights"]
            attention[row, cols] = 1
        labels = input_ids.masked_fill(weights == 0, IGNORE_INDEX)
        # Explicit positions: with left padding the default arange would shift every
        # real token's position by the padding width.
        positions = (attention.cumsum(dim=-1) - 1).clamp(min=0)
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "position_ids": positions,
            "labels": labels,
            "weights": weights,
        }

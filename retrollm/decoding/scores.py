"""Next-token scores of one forward pass, computed only where the decoder reads them.

The loop feeds chunks of many positions, but the controller reads few logits: at a forced
token none, on an evidence whose prefix occurs once the two or three ids the index
allows, and only in the answer or at a clue's first token a whole row. So the forward
pass stops at the last hidden state, and the output projection (the LM head, over 40%
of a chunk's cost on a 135M model with a 49k vocabulary) runs per row the controller
visits: a dot product per allowed id when there are few, the full row otherwise. Padding
cells and forced tokens never reach the head.

On a GPU the same holds, and nothing of vocabulary size crosses to the host: the rows a
step visits are projected on the device, the allowed ids and their eq. 12 bonuses go to
the device, the choice is made there, and one small tensor of chosen ids comes back.
On the CPU the choice stays constraints.pick, in numpy, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from retrollm.decoding.constraints import TIE_TOLERANCE, Allowed, pick, pick_among


class LMHead:
    """The output projection logits = hidden @ weight.T (+ bias), on chosen rows only.
    Keeps the seconds it spends, which are forward-pass time, not decoder overhead."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        self.weight, self.bias = linear.weight, linear.bias
        # Above this many ids one full row costs less than gathering weight rows.
        self.gather_below = max(1, self.weight.shape[0] // 8)
        self.seconds = 0.0

    def full(self, hidden: torch.Tensor) -> torch.Tensor:
        """(n, H) -> (n, vocab) float32 logits, on the hidden states' device."""
        started = time.perf_counter()
        out = torch.nn.functional.linear(hidden, self.weight, self.bias).float()
        self.seconds += time.perf_counter() - started
        return out

    def at(self, hidden: torch.Tensor, ids: np.ndarray) -> np.ndarray:
        """Logits of one (H,) hidden state at the given ids, fp32 numpy (CPU only)."""
        started = time.perf_counter()
        index = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        bias = self.bias[index] if self.bias is not None else None
        out = torch.nn.functional.linear(hidden, self.weight[index], bias).float().numpy()
        self.seconds += time.perf_counter() - started
        return out


@dataclass
class ForwardOutput:
    """What one forward pass left for the controller: the last `keep` positions of every
    row, as hidden states for `head` or, where the head is not split off, as logits."""

    hidden: torch.Tensor | None = None  # (rows, keep, H)
    logits: torch.Tensor | None = None  # (rows, keep, vocab)
    head: LMHead | None = None
    _host: np.ndarray | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        tensor = self.hidden if self.hidden is not None else self.logits
        assert tensor is not None
        return tensor.device

    @property
    def keep(self) -> int:
        """Positions per row."""
        tensor = self.hidden if self.hidden is not None else self.logits
        assert tensor is not None
        return int(tensor.shape[1])

    def at(self, rows: Sequence[int], depth: int) -> StepScores:
        """The scores after the `depth`-th fed token of the given rows."""
        return StepScores(self, list(rows), depth)

    def host_logits(self) -> np.ndarray:
        """Full CPU logits as fp32 numpy (a view when they already are fp32)."""
        if self._host is None:
            assert self.logits is not None
            self._host = self.logits.float().numpy()
        return self._host

    def logit_rows(self, rows: Sequence[int], depth: int) -> torch.Tensor:
        """(len(rows), vocab) fp32 logits on the output's device."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        if self.logits is not None:
            return self.logits[index, depth].float()
        assert self.hidden is not None and self.head is not None
        return self.head.full(self.hidden[index, depth])


@dataclass
class StepScores:
    """One position of some rows of a ForwardOutput; the controller picks through it."""

    out: ForwardOutput
    rows: list[int]
    depth: int

    @classmethod
    def of_array(cls, logits: np.ndarray) -> StepScores:
        """Scores of given full-vocabulary rows (rows, vocab), as tests hand-make them."""
        array = np.ascontiguousarray(logits, dtype=np.float32)
        out = ForwardOutput(logits=torch.from_numpy(array[:, None, :]))
        return cls(out, list(range(array.shape[0])), 0)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        """The whole fp32 logit row of view row i, on the host (scripted test controllers;
        the decoder reads through `pick`, which never builds it on a device)."""
        return self.out.logit_rows([self.rows[i]], self.depth)[0].cpu().numpy()

    def pick(self, requests: Sequence[tuple[int, Allowed]]) -> list[int]:
        """The greedy choice under each (view row, rule), as constraints.pick makes it."""
        if not requests:
            return []
        if self.out.device.type == "cpu":
            return [self._pick_host(i, allowed) for i, allowed in requests]
        logits = self.out.logit_rows([self.rows[i] for i, _ in requests], self.depth)
        return pick_on_device(logits, [allowed for _, allowed in requests])

    def _pick_host(self, i: int, allowed: Allowed) -> int:
        row = self.rows[i]
        if self.out.logits is not None:
            return pick(self.out.host_logits()[row, self.depth], allowed)
        head, hidden = self.out.head, self.out.hidden
        assert head is not None and hidden is not None
        state = hidden[row, self.depth]
        if allowed.ids is None or allowed.ids.size >= head.gather_below:
            return pick(head.full(state[None])[0].numpy(), allowed)
        if allowed.ids.size == 0:
            raise ValueError("no token is allowed")
        return pick_among(head.at(state, allowed.ids), allowed)


def pick_on_device(logits: torch.Tensor, rules: Sequence[Allowed]) -> list[int]:
    """constraints.pick for a batch of rows on any device: gather the allowed ids, add
    their bonuses (float64, as on the host), take the first id within TIE_TOLERANCE of
    the best. Only the allowed ids, bonuses and banned ids travel to the device, and only
    the chosen ids come back (one transfer each way)."""
    device = logits.device
    chosen = torch.zeros(len(rules), dtype=torch.long, device=device)
    sparse = [k for k, a in enumerate(rules) if a.ids is not None]
    dense = [k for k, a in enumerate(rules) if a.ids is None]
    if sparse:
        if any(rules[k].ids.size == 0 for k in sparse):  # type: ignore[union-attr]
            raise ValueError("no token is allowed")
        width = max(rules[k].ids.size for k in sparse)  # type: ignore[union-attr]
        ids = np.zeros((len(sparse), width), dtype=np.int64)
        bonus = np.zeros((len(sparse), width), dtype=np.float64)
        valid = np.zeros((len(sparse), width), dtype=bool)
        for j, k in enumerate(sparse):
            allowed = rules[k]
            n = allowed.ids.size  # type: ignore[union-attr]
            ids[j, :n], valid[j, :n] = allowed.ids, True
            if allowed.bonus is not None:
                bonus[j, :n] = allowed.bonus
        ids_t = torch.from_numpy(ids).to(device)
        rows = torch.as_tensor(sparse, dtype=torch.long, device=device)
        scores = logits[rows].gather(1, ids_t).double() + torch.from_numpy(bonus).to(device)
        valid_t = torch.from_numpy(valid).to(device)
        scores = scores.masked_fill(~valid_t, float("-inf"))
        first = _first_best(scores, valid_t)
        chosen[rows] = ids_t.gather(1, first[:, None])[:, 0]
    if dense:
        rows = torch.as_tensor(dense, dtype=torch.long, device=device)
        scores = logits[rows].double()
        banned_rows = [np.full(rules[k].banned.size, j) for j, k in enumerate(dense)]
        banned_cols = [rules[k].banned for k in dense]
        if sum(b.size for b in banned_cols):
            r = torch.from_numpy(np.concatenate(banned_rows).astype(np.int64)).to(device)
            c = torch.from_numpy(np.concatenate(banned_cols).astype(np.int64)).to(device)
            scores[r, c] = float("-inf")
        chosen[rows] = _first_best(scores, None)
    return [int(t) for t in chosen.tolist()]


def _first_best(scores: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Per row, the first column within TIE_TOLERANCE (relative) of the row's best."""
    best = scores.max(dim=1).values
    threshold = best - TIE_TOLERANCE * best.abs().clamp(min=1.0)
    near = scores >= threshold[:, None]
    if valid is not None:
        near &= valid
    return near.to(torch.float32).argmax(dim=1)  # argmax returns the first maximum

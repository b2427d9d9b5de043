"""One forward pass for the generation loop: the model body up to its last hidden state,
with the LM head split off (scores.py applies it where the controller reads), on the
model's own device.

Splitting is checked, not assumed: a model whose logits are more than `head(body(x))`
(soft-capping, a logit scale) fails the check on a probe input and keeps its full head.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from retrollm.decoding.scores import ForwardOutput, LMHead


class ModelForward:
    """Runs `model` on chunks; `split_head` False keeps the full-vocabulary logits of
    every fed position, the decoder's path before the head was split off."""

    def __init__(self, model: torch.nn.Module, split_head: bool = True) -> None:
        self.model = model
        weight = next(model.parameters(), None)  # a stand-in LM in tests may have none
        self.device = weight.device if weight is not None else torch.device("cpu")
        self.body: torch.nn.Module | None = None
        self.head: LMHead | None = None
        if split_head:
            self.body, self.head = _split(model, self.device)

    @property
    def split(self) -> bool:
        return self.head is not None

    def __call__(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        keep: int,
        cache: DynamicCache,
    ) -> ForwardOutput:
        """The last `keep` positions of every row."""
        if self.body is not None:
            out = self.body(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
            return ForwardOutput(hidden=out.last_hidden_state[:, -keep:, :], head=self.head)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        return ForwardOutput(logits=out.logits[:, -keep:, :])


@torch.inference_mode()
def _split(
    model: torch.nn.Module, device: torch.device
) -> tuple[torch.nn.Module | None, LMHead | None]:
    """(body, head) when logits are exactly a linear map of the body's last hidden state."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    body = getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or body is None or body is model:
        return None, None
    probe = torch.arange(min(4, head.weight.shape[0]), device=device)[None]
    full = model(input_ids=probe, use_cache=False).logits[0].float()
    hidden = body(input_ids=probe, use_cache=False).last_hidden_state[0]
    mine = torch.nn.functional.linear(hidden, head.weight, head.bias).float()
    if mine.shape != full.shape or not torch.allclose(mine, full, rtol=1e-3, atol=1e-3):
        return None, None
    return body, LMHead(head)

"""LoRA wrapping, one optimisation step, and exact resumption, on the tiny random model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from retrollm.models import SpecialTokenIds, load_causal_lm
from retrollm.training.data import Collator, TrainDataset
from retrollm.training.loop import LoopConfig, forward_sum, train
from retrollm.training.lora import lora_config, trainable_parameters, wrap_model


def _accelerator() -> Any:
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _lora_model(folder: Path, seed: int = 0, dropout: float = 0.1) -> tuple[Any, list[int]]:
    torch.manual_seed(seed)
    model, tokenizer = load_causal_lm(folder)
    ids = list(SpecialTokenIds.from_tokenizer(tokenizer).as_dict().values())
    config = lora_config(
        model, ids, r=4, alpha=16, dropout=dropout, target_modules=["q_proj", "v_proj"]
    )
    return wrap_model(model, config), ids


def _examples(special: list[int], n: int = 6) -> list[tuple[list[int], list[float]]]:
    """Made-up sequences that use the special tokens, with a prompt and weighted answer."""
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        body = torch.randint(10, 400, (8 + i,), generator=g).tolist()
        ids = [
            1,
            *body[:3],
            special[0],
            *body[3:5],
            special[1],
            special[2],
            *body[5:],
            special[3],
            2,
        ]
        weights = [0.0] * 4 + [1.0] * (len(ids) - 6) + [2.0, 2.0]
        out.append((ids, weights))
    return out


def test_only_lora_and_special_rows_are_trainable(tiny_model_dir: Path) -> None:
    model, special = _lora_model(tiny_model_dir)
    names = [n for n, _ in trainable_parameters(model)]
    assert names and all("lora_" in n or "trainable_tokens" in n for n in names)
    rows = [p for n, p in trainable_parameters(model) if "trainable_tokens" in n]
    assert len(rows) == 1 and rows[0].shape[0] == len(special)


def test_one_step_lowers_the_loss_on_its_batch(tiny_model_dir: Path) -> None:
    model, special = _lora_model(tiny_model_dir, dropout=0.0)
    data = TrainDataset(_examples(special), seed=0, shuffle=False)
    batch = Collator(pad_id=0)([data[i] for i in range(len(data))])
    embeddings = model.get_base_model().get_input_embeddings()
    before_rows = embeddings(torch.arange(300)).detach().clone()
    before_special = embeddings(torch.tensor(special)).detach().clone()
    optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=1e-2)
    model.train()
    loss = forward_sum(model, batch)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = forward_sum(model, batch)
    assert float(after) < float(loss.detach())
    assert torch.equal(embeddings(torch.arange(300)), before_rows)  # ordinary rows frozen
    assert not torch.equal(embeddings(torch.tensor(special)), before_special)


def _run(folder: Path, checkpoints: Path, stop_after: int | None = None) -> tuple[dict, Any]:
    from accelerate.utils import set_seed

    set_seed(0)
    model, special = _lora_model(folder)
    data = TrainDataset(_examples(special), seed=0)
    config = LoopConfig(
        epochs=2, batch_size=2, grad_accum=2, lr=5e-3, warmup_ratio=0.25, checkpoint_every=100
    )
    model, state = train(
        model, data, Collator(pad_id=0), _accelerator(), config, checkpoints, "run-a",
        stop_after=stop_after,
    )  # fmt: skip
    return {n: p.detach().clone() for n, p in trainable_parameters(model)}, state


def test_resume_matches_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    full, full_state = _run(tiny_model_dir, tmp_path / "a")
    assert full_state.step == 4  # 6 examples / batch 2 = 3 micro-batches -> 2 steps, x 2 epochs
    _, first = _run(tiny_model_dir, tmp_path / "b", stop_after=1)
    assert first.step == 1
    resumed, state = _run(tiny_model_dir, tmp_path / "b")  # a fresh process would do this
    assert state.step == 4
    assert [e["loss"] for e in state.history] == pytest.approx(
        [e["loss"] for e in full_state.history]
    )
    for name, tensor in full.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6)


def _run_b(folder: Path, checkpoints: Path, stop_after: int | None) -> Any:
    model, special = _lora_model(folder)
    data = TrainDataset(_examples(special), seed=0)
    config = LoopConfig(epochs=1, batch_size=2, grad_accum=2)
    _, state = train(
        model, data, Collator(pad_id=0), _accelerator(), config, checkpoints, "run-b",
        stop_after=stop_after,
    )  # fmt: skip
    return state


def test_checkpoint_of_another_run_is_not_resumed(tiny_model_dir: Path, tmp_path: Path) -> None:
    _run(tiny_model_dir, tmp_path)  # run-a leaves checkpoints up to step 4
    state = _run_b(tiny_model_dir, tmp_path, stop_after=1)
    assert len(state.history) == 1 and state.fingerprint == "run-b"
    state = _run_b(tiny_model_dir, tmp_path, stop_after=None)  # resumes run-b, not run-a
    assert state.step == 2 and [e["step"] for e in state.history] == [1.0, 2.0]


def test_resume_unpickles_nothing_and_clears_a_killed_write(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(tiny_model_dir, tmp_path, stop_after=1)
    assert not list(tmp_path.glob("step-*/rng-*.pt"))  # RNG states are json + safetensors
    stale = tmp_path / ".tmp-step-000003"  # a run killed while writing a checkpoint
    (stale / "half").mkdir(parents=True)
    real_load = torch.load
    modes: list[object] = []

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        modes.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    _, state = _run(tiny_model_dir, tmp_path)
    assert state.step == 4
    assert modes and all(mode is True for mode in modes), modes
    assert not stale.exists()


def test_rng_states_round_trip_without_pickle(tmp_path: Path) -> None:
    import random

    import numpy as np

    from retrollm.training.checkpoint import load_rng_state, save_rng_state, set_rng_state

    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    save_rng_state(tmp_path, 0)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = load_rng_state(tmp_path, 0)
    assert state is not None and load_rng_state(tmp_path, 1) is None
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected

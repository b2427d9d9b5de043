"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder `step-000120/` holds only what training changes (the trainable
parameters, a few MB, not the frozen base), the optimizer and scheduler states, every
process's RNG states (dropout draws continue identically), and `state.json` with the
optimizer step, the log history so far and the run's fingerprint. It is written into a
temporary folder and renamed, so a kill mid-write leaves the previous checkpoint intact.

Nothing is unpickled on resume: optimizer and scheduler state dicts hold only tensors and
plain values (loaded with weights_only=True), and the RNG states are stored as json (the
Python and NumPy generators) and safetensors (the torch generators), so a checkpoint
folder from elsewhere cannot run code when it is loaded.

A checkpoint whose fingerprint (params, trainset, base model) differs from the current
run's is never resumed: the run starts over instead of mixing two configurations.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from retrollm.training.lora import trainable_parameters

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "state.json"


@dataclass
class RunState:
    """Where a run is: optimizer steps done and the metrics logged so far."""

    step: int = 0
    total: int = 0  # optimizer steps the whole run takes
    fingerprint: str = ""
    history: list[dict[str, float]] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng_state(folder: Path, process: int) -> None:
    """rng-N.json (Python, NumPy) and rng-N.safetensors (torch CPU and CUDA generators)."""
    state = rng_state()
    version, words, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    plain = {
        "python": [version, list(words), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    (folder / f"rng-{process}.json").write_text(json.dumps(plain) + "\n")
    tensors = {"torch": state["torch"]}
    tensors |= {f"cuda.{i}": s for i, s in enumerate(state.get("cuda", []))}
    save_file(tensors, str(folder / f"rng-{process}.safetensors"))


def load_rng_state(folder: Path, process: int) -> dict[str, Any] | None:
    """The state save_rng_state wrote, for set_rng_state; None when this process saved none."""
    plain_file, tensor_file = folder / f"rng-{process}.json", folder / f"rng-{process}.safetensors"
    if not (plain_file.is_file() and tensor_file.is_file()):
        return None
    plain = json.loads(plain_file.read_text())
    version, words, gauss = plain["python"]
    name, keys, pos, has_gauss, cached = plain["numpy"]
    tensors = load_file(str(tensor_file))
    state: dict[str, Any] = {
        "python": (version, tuple(words), gauss),
        "numpy": (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached),
        "torch": tensors["torch"],
    }
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))
    if cuda:
        state["cuda"] = [tensors[k] for k in cuda]
    return state


def latest_checkpoint(root: Path | str) -> Path | None:
    """The finished checkpoint with the highest step, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def clear_checkpoints(root: Path | str) -> None:
    """Remove every checkpoint (finished or half-written) under `root`."""
    root = Path(root)
    if root.is_dir():
        for path in root.iterdir():
            if _STEP_DIR.match(path.name) or path.name.startswith(".tmp-step-"):
                shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    root: Path | str,
    accelerator: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: RunState,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step-{state.step}` (all processes must call this)."""
    root = Path(root)
    final = root / f"step-{state.step:06d}"
    tmp = root / f".tmp-step-{state.step:06d}"
    if accelerator.is_main_process:
        # One run writes a checkpoint folder at a time, so any other temporary one is
        # left over from a killed run.
        for stale in root.glob(".tmp-step-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    save_rng_state(tmp, accelerator.process_index)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        tensors = {n: p.detach().cpu().contiguous() for n, p in trainable_parameters(unwrapped)}
        save_file(tensors, str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        steps = sorted(
            (int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))
        )
        for _, old in steps[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    folder: Path | str,
    accelerator: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> tuple[RunState, dict[str, Any] | None]:
    """Restore parameters, optimizer and scheduler; return the state and this process's
    RNG states (None if absent), for the caller to apply with set_rng_state."""
    folder = Path(folder)
    unwrapped = accelerator.unwrap_model(model)
    params = dict(trainable_parameters(unwrapped))
    saved = load_file(str(folder / "trainable.safetensors"))
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        raise RuntimeError(
            f"{folder}: checkpoint parameters differ from the model's "
            f"(missing {missing[:3]}, extra {extra[:3]})"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name].to(param.device, param.dtype))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    # Absent when resuming on more processes than were saved: that run is not bit-exact.
    rng = load_rng_state(folder, accelerator.process_index)
    return read_state(folder), rng


def read_state(folder: Path | str) -> RunState:
    return RunState(**json.loads((Path(folder) / STATE_FILE).read_text()))

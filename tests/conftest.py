"""Shared fixtures: the fixture corpus and a tiny random model, built once per session.

Fixture names are a contract other test files rely on; keep them stable.

- `fixture_corpus_path` -> Path: tests/fixtures/corpus.jsonl (21 Wikipedia summaries,
  FlashRAG corpus format: id, title, contents = "title\\ntext").
- `fixture_texts` -> list[str]: the `contents` of those documents, in file order.
- `tiny_model_dir` -> Path: a prepared tiny model folder, like data/models/base: a random
  2-layer Llama with a 512-token byte-level BPE trained on `fixture_texts`
  (retrollm.tiny.build_tiny_model), passed through stages.prepare_model.main, so it holds
  the five RetroLLM special tokens (ids 512..516) and a "model" manifest. Read-only.
- `tiny_model_and_tokenizer` -> (model, tokenizer): `tiny_model_dir` loaded with
  retrollm.models.load_causal_lm, eval mode, after torch.manual_seed(0). Shared by the
  whole session: a test that changes weights must load its own copy from `tiny_model_dir`.

torch and transformers are imported inside the fixtures, so tests that need neither do
not pay for the import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TORCH_THREADS = 2  # the dev machine has 2 cores; tiny models gain nothing from more


@pytest.fixture(scope="session")
def fixture_corpus_path() -> Path:
    return FIXTURES / "corpus.jsonl"


@pytest.fixture(scope="session")
def fixture_texts(fixture_corpus_path: Path) -> list[str]:
    with open(fixture_corpus_path, encoding="utf-8") as handle:
        return [json.loads(line)["contents"] for line in handle if line.strip()]


@pytest.fixture(scope="session")
def tiny_model_dir(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from retrollm.tiny import build_tiny_model
    from stages.common import Paths
    from stages.prepare_model import PrepareModelParams
    from stages.prepare_model import main as prepare_model

    torch.set_num_threads(TORCH_THREADS)
    root = tmp_path_factory.mktemp("tiny_model")
    raw = build_tiny_model(fixture_texts, root / "raw")
    paths = Paths(assets=root / "assets", model=root / "base")
    prepare_model(PrepareModelParams(source=raw, dtype="float32"), paths)
    return paths.model


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer(tiny_model_dir: Path) -> tuple[Any, Any]:
    import torch

    from retrollm.models import load_causal_lm

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    return load_causal_lm(tiny_model_dir)

"""SPLADE: sparse vocabulary vectors for questions and documents, and search over them.

RetroLLM uses SPLADE twice (docs/method.md §3-4): the question's top vocabulary terms become
extra clues (clue expansion), and a SPLADE document ranking is fused with the clue
ranking. Weights are SPLADE's own, w_j = max_i log(1 + relu(logit_ij)) over the
non-padding positions i, so any SPLADE checkpoint (splade-tiny here, SPLADE-v3 on a GPU
box) plugs in unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer

from retrollm.retrieval.ranking import top_k

# Vocabulary entries that are never useful clues: BERT's reserved "[unused12]"-style slots.
_BRACKETED = re.compile(r"^\[.*\]$")


class SparseVector(NamedTuple):
    """One sparse row: term ids (ascending, int32) and their positive weights (float32)."""

    indices: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class SparseRows:
    """Rows in CSR form as plain numpy arrays, so they save as .npy without scipy."""

    indptr: np.ndarray  # int64, n_rows + 1
    indices: np.ndarray  # int32
    values: np.ndarray  # float32
    n_cols: int

    def __len__(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def row(self, i: int) -> SparseVector:
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return SparseVector(self.indices[lo:hi], self.values[lo:hi])

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> SparseRows:
        """CSR of a dense (rows, cols) array, zeros dropped."""
        dense = np.asarray(dense, dtype=np.float32)
        rows, cols = np.nonzero(dense)
        indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int32), dense[rows, cols], int(dense.shape[1]))

    @classmethod
    def concat(cls, parts: Sequence[SparseRows], n_cols: int) -> SparseRows:
        indptrs = [np.zeros(1, dtype=np.int64)]
        offset = 0
        for part in parts:
            indptrs.append(part.indptr[1:] + offset)
            offset += int(part.indptr[-1])
        return cls(
            np.concatenate(indptrs),
            np.concatenate([p.indices for p in parts] or [np.zeros(0, np.int32)]),
            np.concatenate([p.values for p in parts] or [np.zeros(0, np.float32)]),
            n_cols,
        )


class SpladeEncoder:
    """A BertForMaskedLM-style checkpoint used as a SPLADE encoder (inference only)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_length: int = 256):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir}: not a Hugging Face model folder")
        # local_files_only: a missing file must fail here, never trigger a hub download.
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForMaskedLM.from_pretrained(self.model_dir, local_files_only=True)
        self.model.to(device).eval()
        self.device = device
        self.max_length = max_length
        self.vocab_chunk = 2048  # columns of the vocabulary projection computed at once
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self._clue_mask = self._clue_vocabulary()

    def _clue_vocabulary(self) -> np.ndarray:
        """Which vocabulary ids may be expansion terms: whole-word pieces that are not
        special or reserved tokens and hold a letter or digit (punctuation would match
        almost every window)."""
        keep = np.zeros(self.vocab_size, dtype=bool)
        special = set(self.tokenizer.all_special_ids)
        for token, token_id in self.tokenizer.get_vocab().items():
            if token_id >= self.vocab_size or token_id in special:
                continue
            if token.startswith("##") or _BRACKETED.match(token):
                continue
            keep[token_id] = any(ch.isalnum() for ch in token)
        return keep

    @torch.inference_mode()
    def encode_dense(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), vocab) SPLADE weights of one batch, on CPU.

        log1p(relu(.)) is monotone, so max-pooling raw logits first is exact. The
        vocabulary projection dominates the cost, so it runs on the real (non-padding)
        positions only, a slice of the vocabulary at a time: no (batch, length, vocab)
        tensor is ever built, which is what makes 10k documents a matter of minutes.
        """
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        mask = batch["attention_mask"].bool()
        head = self.model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):  # unusual head: take the plain route
            logits = self.model(**batch).logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            return torch.log1p(torch.relu(logits.amax(dim=1))).float().cpu()
        hidden = _head_input(self.model, head, batch)[mask]  # (real tokens, hidden)
        rows = torch.repeat_interleave(
            torch.arange(mask.shape[0], device=hidden.device), mask.sum(dim=1)
        )
        pooled = torch.empty(mask.shape[0], self.vocab_size, device=hidden.device)
        for lo in range(0, self.vocab_size, self.vocab_chunk):
            hi = min(lo + self.vocab_chunk, self.vocab_size)
            bias = head.bias[lo:hi] if head.bias is not None else None
            logits = torch.nn.functional.linear(hidden, head.weight[lo:hi], bias)
            slab = torch.full((mask.shape[0], hi - lo), float("-inf"), device=hidden.device)
            index = rows.unsqueeze(1).expand_as(logits)
            pooled[:, lo:hi] = slab.scatter_reduce_(0, index, logits, reduce="amax")
        return torch.log1p(torch.relu(pooled)).float().cpu()

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> SparseRows:
        """Sparse rows for many texts; batches are length-sorted to waste less padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts: list[SparseRows] = []
        for lo in tqdm(
            range(0, len(texts), batch_size),
            desc="splade",
            unit="batch",
            disable=not progress,
        ):
            chunk = [texts[i] for i in order[lo : lo + batch_size]]
            parts.append(SparseRows.from_dense(self.encode_dense(chunk).numpy()))
        sorted_rows = SparseRows.concat(parts, self.vocab_size)
        return _reorder(sorted_rows, np.argsort(np.asarray(order, dtype=np.int64), kind="stable"))

    def top_terms_of(self, vector: SparseVector, k: int = 8) -> list[tuple[str, float]]:
        """The k heaviest clue-eligible terms of an encoded vector, heaviest first."""
        indices, values = vector
        keep = self._clue_mask[indices]
        indices, values = indices[keep], values[keep]
        order = np.lexsort((indices, -values))[:k]
        tokens = self.tokenizer.convert_ids_to_tokens([int(i) for i in indices[order]])
        return [(str(t), float(v)) for t, v in zip(tokens, values[order], strict=True)]

    def top_terms(self, question: str, k: int = 8) -> list[tuple[str, float]]:
        """Expansion terms of a question (k_aux = 8 in the paper), with their weights."""
        return self.top_terms_of(self.encode([question]).row(0), k)


class _HeadInput(Exception):
    """Raised by a pre-hook to stop the forward pass once the head's input is known."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__("captured")
        self.hidden = hidden


def _head_input(model: torch.nn.Module, head: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Hidden states that enter the vocabulary projection, for any *ForMaskedLM model:
    run the model and stop it right before `head` (the projection itself is done by the
    caller, sliced)."""

    def stop(_module: torch.nn.Module, args: tuple) -> None:
        raise _HeadInput(args[0])

    handle = head.register_forward_pre_hook(stop)
    try:
        model(**batch)
    except _HeadInput as captured:
        return captured.hidden
    finally:
        handle.remove()
    raise RuntimeError("the model never called its output embeddings")


def _reorder(rows: SparseRows, perm: np.ndarray) -> SparseRows:
    """Rows in the order perm[0], perm[1], ... (undoes the length sort)."""
    lengths = np.diff(rows.indptr)[perm]
    indptr = np.zeros(perm.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # Source offset of every output entry: its row's old start plus its rank in the row.
    take = np.repeat(rows.indptr[:-1][perm] - indptr[:-1], lengths) + np.arange(indptr[-1])
    return SparseRows(indptr, rows.indices[take], rows.values[take], rows.n_cols)


class SparseDocIndex:
    """Document vectors in an inverted (term -> postings) layout: a query touches only the
    postings of its own terms, milliseconds over tens of thousands of documents."""

    FILES = ("term_ptr.npy", "doc_ids.npy", "weights.npy")

    def __init__(self, term_ptr: np.ndarray, doc_ids: np.ndarray, weights: np.ndarray, n_docs: int):
        self.term_ptr = term_ptr  # int64, n_terms + 1
        self.doc_ids = doc_ids  # int32, ascending within each term
        self.weights = weights  # float32
        self.n_docs = n_docs

    @property
    def n_terms(self) -> int:
        return int(self.term_ptr.shape[0]) - 1

    @property
    def nnz(self) -> int:
        return int(self.doc_ids.shape[0])

    @classmethod
    def build(cls, docs: SparseRows) -> SparseDocIndex:
        """Transpose CSR document rows into term postings (a stable counting sort)."""
        rows = np.repeat(np.arange(len(docs), dtype=np.int32), np.diff(docs.indptr))
        order = np.argsort(docs.indices, kind="stable")
        term_ptr = np.zeros(docs.n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs.indices, minlength=docs.n_cols), out=term_ptr[1:])
        return cls(term_ptr, rows[order], docs.values[order].astype(np.float32), len(docs))

    def search(self, query: SparseVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k documents by dot product (score > 0 only), ties to the lower index."""
        scores = np.zeros(self.n_docs, dtype=np.float32)
        for term, weight in zip(query.indices.tolist(), query.values.tolist(), strict=True):
            if 0 <= term < self.n_terms:
                lo, hi = self.term_ptr[term], self.term_ptr[term + 1]
                # Doc ids are unique within one posting list, so fancy += is exact.
                scores[self.doc_ids[lo:hi]] += np.float32(weight) * self.weights[lo:hi]
        return top_k(scores, k)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = (self.term_ptr, self.doc_ids, self.weights)
        for name, array in zip(self.FILES, arrays, strict=True):
            np.save(folder / name, array)
        meta = {"n_docs": self.n_docs, "n_terms": self.n_terms, "nnz": self.nnz}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True) -> SparseDocIndex:
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder}: no SPLADE document index (meta.json missing)")
        meta = json.loads(meta_path.read_text())
        mode = "r" if mmap else None
        arrays = [np.load(folder / name, mmap_mode=mode) for name in cls.FILES]
        index = cls(*arrays, n_docs=int(meta["n_docs"]))
        if index.n_terms != meta["n_terms"] or index.nnz != meta["nnz"]:
            raise ValueError(f"{folder}: arrays do not match meta.json (truncated copy?)")
        return index

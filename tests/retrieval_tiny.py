"""Tiny random retrieval models for the retrieval tests (no downloads, built in seconds):
a WordPiece tokenizer over the fixture corpus, a SPLADE-shaped BertForMaskedLM, a
one-logit cross-encoder and a sentence-transformers bi-encoder."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EXTRA = ["##s", "##ing", "##ed", "[unused0]", "?", ",", "."]


def wordpiece_tokenizer(texts: Iterable[str]):  # type: ignore[no-untyped-def]
    """An uncased BertTokenizer whose vocabulary is every word of `texts` plus a few
    `##` pieces, punctuation and a reserved `[unused0]` slot."""
    from transformers import BertTokenizer

    words = sorted({w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())})
    vocab = SPECIALS + EXTRA + [w for w in words if w not in EXTRA]
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def _bert_config(vocab_size: int, **extra):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        **extra,
    )


def tiny_splade(folder: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """A random BertForMaskedLM plus tokenizer saved as a SPLADE model folder."""
    import torch
    from transformers import BertForMaskedLM

    tokenizer = wordpiece_tokenizer(texts)
    torch.manual_seed(seed)
    model = BertForMaskedLM(_bert_config(len(tokenizer)))
    # Random heads put most logits near 0; a positive bias makes many terms active.
    with torch.no_grad():
        model.cls.predictions.bias.add_(0.05)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_cross_encoder(folder: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """A random one-label BertForSequenceClassification plus tokenizer."""
    import torch
    from transformers import BertForSequenceClassification

    tokenizer = wordpiece_tokenizer(texts)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(_bert_config(len(tokenizer), num_labels=1))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_biencoder(folder: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """A sentence-transformers folder: random tiny BertModel + mean pooling."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    tokenizer = wordpiece_tokenizer(texts)
    torch.manual_seed(seed)
    bert_dir = folder.parent / f"{folder.name}_bert"
    BertModel(_bert_config(len(tokenizer))).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder

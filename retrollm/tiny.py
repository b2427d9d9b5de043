"""A tiny random Llama with a BPE tokenizer trained on a given corpus.

Tests and the tiny pipeline profile need a model that behaves like the real one (byte-level
BPE, Llama architecture, tied embeddings, a Hugging Face folder) but loads and runs in
milliseconds. Its tokenizer is trained on the corpus itself so that corpus text becomes
few, multi-byte tokens, as with a real vocabulary. The RetroLLM special tokens are left
out on purpose: prepare_model adds them, exactly as for a real model.

    python -m retrollm.tiny CORPUS_JSONL OUT_DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE like GPT-2/SmolLM2: lossless on any text, so decode(encode(x)) == x."""
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[UNK, BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_model(
    texts: Iterable[str],
    out_dir: Path | str,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """Write a randomly initialised LlamaForCausalLM and its tokenizer to `out_dir`.

    Same texts and seed give the same folder contents. `chat_template` (optional) makes
    the tokenizer a chat tokenizer, for testing the chat prompt path.
    """
    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _main() -> None:
    from retrollm.jsonl import read_jsonl
    from schemas import CorpusRecord

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="jsonl of {id, title, contents}")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = [r.contents for r in read_jsonl(args.corpus, CorpusRecord, "raise", [])]
    out = build_tiny_model(texts, args.out_dir, vocab_size=args.vocab_size, seed=args.seed)
    print(f"tiny model ({len(texts)} documents) written to {out}")


if __name__ == "__main__":
    _main()

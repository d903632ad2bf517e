"""The byte-level BPE tokenizer that token shards are made with: train it, load it, save it, hash it.

Byte-level means every string round-trips (no unknown tokens), so decoding a packed sequence gives back the
documents' exact texts. The phi-3 chat-template tokens are special tokens with fixed ids 0..3, so a chat
fine-tune later finds them in every tokenizer assay makes. `<|endoftext|>` ends each document in a packed
sequence.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from groundwork.atomic import write_text_atomic

EOS_TOKEN = "<|endoftext|>"
#: Special tokens in id order; the phi-3 chat template uses the last three.
SPECIAL_TOKENS = (EOS_TOKEN, "<|user|>", "<|assistant|>", "<|end|>")


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable or lacks the special tokens; the message says what to do."""


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE of at most `vocab_size` entries (special tokens and the 256 bytes included)."""
    floor = len(SPECIAL_TOKENS) + 256
    if vocab_size <= floor:
        raise TokenizerError(f"vocab_size must be > {floor} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), "
                             f"got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    check_special_tokens(tok, "the trained tokenizer")
    return tok


def load_tokenizer(path: str) -> Tokenizer:
    """Load a local tokenizer.json and check it has the special tokens token shards rely on."""
    if not os.path.isfile(path):
        raise TokenizerError(f"tokenizer file {path!r} does not exist: give a local tokenizer.json, "
                             "or leave tokenizer.path empty to train one from the pools")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise TokenizerError(f"cannot read tokenizer {path!r}: {exc}; is it a `tokenizers` tokenizer.json?") from None
    check_special_tokens(tok, path)
    return tok


def check_special_tokens(tok: Tokenizer, where: str) -> None:
    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise TokenizerError(f"{where} lacks special tokens {missing}; add them with "
                             "`tok.add_special_tokens([...])` and save it again, or let assay train one")


def eos_id(tok: Tokenizer) -> int:
    return tok.token_to_id(EOS_TOKEN)


def tokenizer_json(tok: Tokenizer) -> str:
    """Canonical serialized form (what is saved and hashed)."""
    return tok.to_str(pretty=False)


def tokenizer_hash(tok: Tokenizer) -> str:
    """Content hash: two tokenizers with the same hash encode every text identically."""
    return hashlib.sha256(tokenizer_json(tok).encode("utf-8")).hexdigest()


def save_tokenizer(tok: Tokenizer, path: str) -> None:
    """Write tokenizer.json atomically (temp file + rename)."""
    write_text_atomic(tokenizer_json(tok), path)

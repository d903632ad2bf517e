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

from assay.groundwork.atomic import write_text_atomic
from assay.trainer.tokenizer_file import TokenizerError, checked_json, first_line, rust_failure

EOS_TOKEN = "<|endoftext|>"
#: Special tokens in id order; the phi-3 chat template uses the last three.
SPECIAL_TOKENS = (EOS_TOKEN, "<|user|>", "<|assistant|>", "<|end|>")
#: a byte-level BPE holds the 256 bytes and the special tokens before its first merge: a trained vocabulary must
#: be larger (checked here, by recipes and by ablation plans)
VOCAB_FLOOR = 256 + len(SPECIAL_TOKENS)
VOCAB_FLOOR_REASON = f"256 bytes + {len(SPECIAL_TOKENS)} special tokens"


#: a plain text every tokenizer must encode when it is loaded
CANARY = "A tokenizer check: 12,345 words, é, 漢字 and tabs\t.\n"


class EncodeError(TokenizerError):
    """The tokenizer failed on texts[index] (index None: on the batch, not on any one text alone)."""

    def __init__(self, index: int | None, reason: str):
        self.index, self.reason = index, reason
        super().__init__(f"the tokenizer cannot encode text {index}: {reason}")


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE of at most `vocab_size` entries (special tokens and the 256 bytes included)."""
    if vocab_size <= VOCAB_FLOOR:
        raise TokenizerError(f"vocab_size must be > {VOCAB_FLOOR} ({VOCAB_FLOOR_REASON}), got {vocab_size}")
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
    """Load a local tokenizer.json that may come from someone else: checked first (assay/trainer/tokenizer_file.py:
    JSON, known regular expressions only, no padding or truncation), then loaded, then it must have the special
    tokens token shards rely on and encode a plain text. Every failure, a panic of the library's Rust code
    included, is a TokenizerError naming the file."""
    if not os.path.isfile(path):
        raise TokenizerError(f"tokenizer file {path!r} does not exist: give a local tokenizer.json, "
                             "or leave tokenizer.path empty to train one from the pools")
    text = checked_json(path)
    try:
        tok = Tokenizer.from_str(text)
    except BaseException as exc:  # a bare Exception on malformed files, a PanicException on some
        if not rust_failure(exc):
            raise
        raise TokenizerError(f"cannot read tokenizer {path!r}: {first_line(exc)}; is it a `tokenizers` "
                             "tokenizer.json?") from None
    check_special_tokens(tok, path)
    try:
        encode_all(tok, [CANARY])
    except EncodeError as exc:
        raise TokenizerError(f"tokenizer {path!r} cannot encode a plain sentence ({exc.reason}); use another "
                             "tokenizer.json, or leave tokenizer.path empty to train one from the pools") from None
    return tok


def encode_all(tok: Tokenizer, texts: list[str]) -> list:
    """`tok.encode_batch(texts)` without special tokens added; when the library fails (an error or a Rust panic)
    EncodeError names the first text it fails on."""
    try:
        return tok.encode_batch(texts, add_special_tokens=False)
    except BaseException as exc:
        if not rust_failure(exc):
            raise
        batch_reason = first_line(exc)
    for i, text in enumerate(texts):
        try:
            tok.encode(text, add_special_tokens=False)
        except BaseException as exc:
            if not rust_failure(exc):
                raise
            raise EncodeError(i, first_line(exc)) from None
    raise EncodeError(None, batch_reason)


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

"""A tokenizer.json from someone else, checked before the `tokenizers` library runs any of it.

A mix recipe names its tokenizer file, and an ablation plan's recipes and a token-shard folder carry one. The
`tokenizers` library runs the file's regular expressions (Split pre-tokenizers, Replace normalizers and decoders)
with Oniguruma, a backtracking engine: `(a+)+$` takes exponential time on "aaaa...b". Past Oniguruma's retry limit
the library panics, which reaches Python as pyo3's PanicException, a BaseException that `except Exception` misses;
below it a pattern is only slow, on every document. A file's padding and truncation make every encode allocate
what they say (a fixed padding of 10**12 tokens aborts the process) or cut documents short. So `checked_json`:

* reads the file as JSON in Python first, at most MAX_BYTES; anything that is no JSON object with a model is refused;
* refuses every regular expression in the normalizer, pre-tokenizer, post-processor and decoder that is not one of
  SAFE_PATTERNS, the patterns of well-known tokenizers, naming the file, where in it, and what to do. A literal
  pattern ({"String": ...}) and the library's built-in splits (ByteLevel, Whitespace, Digits, ...) are fine;
* drops padding and truncation: assay encodes whole documents, one at a time.

`rust_failure` tells a failure of the library (its errors and its panics) from everything else, so callers turn
both into a TokenizerError that names the file instead of a traceback.
"""
from __future__ import annotations

import json
import os

MAX_BYTES = 256 << 20  # the largest public tokenizer.json files are a few tens of MiB
#: where a tokenizer.json keeps the parts that may hold regular expressions
PIPELINE_PARTS = ("normalizer", "pre_tokenizer", "post_processor", "decoder")
#: Regular expressions of well-known tokenizers, as they appear in their tokenizer.json files. Each is linear in
#: practice: single quantifiers over disjoint classes, no nested repetition, no back-references.
SAFE_PATTERNS = frozenset({
    # GPT-2 (written out; the ByteLevel pre-tokenizer's built-in is the same)
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    # cl100k_base, Llama 3
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+",
    # Qwen2
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    # o200k_base
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    # digit and whitespace splits
    r"\p{N}", r"\p{N}{1,3}", r"\d", r"\d{1,3}", r"\s+", r" {2,}",
})
WHAT_TO_DO = ("use a tokenizer whose regular expressions are well-known ones (GPT-2, cl100k/Llama 3, Qwen2, o200k, "
              "digit splits: assay.trainer.tokenizer_file.SAFE_PATTERNS) or literal {\"String\": ...} patterns, "
              "or leave tokenizer.path empty to train one from the pools")


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable, unsafe or lacks the special tokens, or cannot encode a document;
    the message names the file and says what to do."""


def rust_failure(exc: BaseException) -> bool:
    """True for what the `tokenizers` library raises when it fails: a plain Exception, or a Rust panic (pyo3's
    PanicException, which derives from BaseException). KeyboardInterrupt, SystemExit and the like are not."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checked_json(path: str) -> str:
    """The file's JSON, with padding and truncation dropped, once it is known to hold nothing unsafe; raises
    TokenizerError naming `path` otherwise."""
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise TokenizerError(f"tokenizer {path!r} is {size:,} bytes, more than any tokenizer.json assay "
                                 f"accepts ({MAX_BYTES:,}); is it a tokenizer.json?")
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise TokenizerError(f"cannot read tokenizer {path!r}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TokenizerError(f"cannot read tokenizer {path!r}: not JSON ({first_line(exc)}); is it a `tokenizers` "
                             "tokenizer.json?") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TokenizerError(f"cannot read tokenizer {path!r}: no `model` object, so it is not a `tokenizers` "
                             "tokenizer.json")
    for where, pattern in regex_patterns(data):
        if pattern not in SAFE_PATTERNS:
            shown = repr(pattern) if len(repr(pattern)) <= 120 else repr(pattern)[:117] + "..."
            raise TokenizerError(
                f"tokenizer {path!r}: {where} is a regular expression assay does not know to be safe: {shown}. "
                "Such a pattern runs over every document, and a backtracking one (like `(a+)+$`) can stall or crash "
                f"the run; {WHAT_TO_DO}")
    data["padding"] = data["truncation"] = None
    return json.dumps(data, ensure_ascii=False)


def regex_patterns(data: dict) -> list[tuple[str, object]]:
    """(where, pattern) for every {"Regex": pattern} in the parts of the pipeline, in file order."""
    found = []
    stack = [(part, data.get(part)) for part in reversed(PIPELINE_PARTS)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            if "Regex" in node:
                found.append((where, node["Regex"]))
            stack.extend((f"{where}.{key}", value) for key, value in reversed(node.items()) if key != "Regex")
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", value) for i, value in reversed(list(enumerate(node))))
    return found

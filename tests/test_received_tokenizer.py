"""A tokenizer.json from someone else: a backtracking regular expression, a malformed file, a file that cannot
encode some document. Each ends `assay mix` with one line naming the file and what to do, never a traceback."""
import json
import re

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from typer.testing import CliRunner

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.pipelines.cli import app
from assay.trainer.tokenizer import SPECIAL_TOKENS, TokenizerError, load_tokenizer, save_tokenizer, train_bpe
from assay.trainer.tokenizer_file import SAFE_PATTERNS

CATASTROPHIC = "(a+)+$"  # exponential backtracking on "aaaa...b"
ATTACK = "a" * 40 + "b"
TEXTS = ["the quick brown fox jumps over the lazy dog, 12 times"] * 20


@pytest.fixture(scope="module")
def trained():
    return train_bpe(TEXTS, vocab_size=300, min_frequency=1)


def _with(tok, path, **parts) -> str:
    """`tok` with its normalizer / pre_tokenizer / decoder replaced, saved by the `tokenizers` library."""
    tok = Tokenizer.from_str(tok.to_str())
    for name, value in parts.items():
        setattr(tok, name, value)
    tok.save(str(path))
    return str(path)


def _split(pattern):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), "isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def test_a_catastrophic_regex_is_refused_before_it_runs(tmp_path, trained):
    path = _with(trained, tmp_path / "evil.json", pre_tokenizer=_split(CATASTROPHIC))
    with pytest.raises(BaseException) as raw:  # what the library does with it: a Rust panic, not an Exception
        Tokenizer.from_file(path).encode(ATTACK)
    assert not isinstance(raw.value, Exception) and "retry-limit" in str(raw.value)
    with pytest.raises(TokenizerError) as err:
        load_tokenizer(path)
    msg = str(err.value)
    assert path in msg and "pre_tokenizer.pretokenizers[0].pattern" in msg and "'(a+)+$'" in msg
    assert "leave tokenizer.path empty" in msg
    for where, parts in {"normalizer.pattern": dict(normalizer=normalizers.Replace(Regex(CATASTROPHIC), "x")),
                         "decoder.decoders[1].pattern": dict(decoder=decoders.Sequence(
                             [decoders.ByteLevel(), decoders.Replace(Regex(CATASTROPHIC), "x")]))}.items():
        with pytest.raises(TokenizerError, match=re.escape(f"{where} is a regular expression")):
            load_tokenizer(_with(trained, tmp_path / f"{where}.json", **parts))


def test_well_known_patterns_and_literals_load(tmp_path, trained):
    llama3 = next(p for p in SAFE_PATTERNS if p.startswith("(?i:") and r"\p{N}{1,3}" in p)
    tok = load_tokenizer(_with(trained, tmp_path / "llama3.json", pre_tokenizer=_split(llama3),
                               normalizer=normalizers.Replace("\t", " ")))
    assert tok.encode("hello  world 12345").ids


def test_malformed_files_are_errors_naming_the_file(tmp_path, trained):
    good = json.loads(trained.to_str())
    cases = {
        "truncated": trained.to_str()[:500],
        "not an object": "[1, 2, 3]",
        "deep": "[" * 100_000 + "]" * 100_000,
        "binary": b"\xff\xfe\x00garbage",
        # a precompiled normalizer map that does not parse makes the library panic while loading
        "panic": json.dumps(dict(good, normalizer={"type": "Precompiled", "precompiled_charsmap": "AAAA"})),
        "bad regex": json.dumps(dict(good, pre_tokenizer={"type": "Split", "pattern": {"Regex": 7},
                                                          "behavior": "Isolated", "invert": False})),
        "wrong model": json.dumps(dict(good, model={"type": "BPE", "vocab": {"a": 0}, "merges": [["x", "y"]]})),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(TokenizerError, match=re.escape(str(path))):
            load_tokenizer(str(path))


def test_padding_and_truncation_are_dropped(tmp_path, trained):
    """A fixed padding of 10**12 tokens would abort the process on the first encode; truncation would cut texts."""
    data = json.loads(trained.to_str())
    data["padding"] = {"strategy": {"Fixed": 10 ** 12}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": SPECIAL_TOKENS[0]}
    data["truncation"] = {"direction": "Right", "max_length": 1, "strategy": "LongestFirst", "stride": 0}
    path = tmp_path / "padded.json"
    path.write_text(json.dumps(data))
    tok = load_tokenizer(str(path))
    assert tok.padding is None and tok.truncation is None and len(tok.encode(TEXTS[0]).ids) > 1


def _pool(root, texts: dict[str, str]) -> str:
    rows = [{"id": k, "text": v, "source": "t", "url": "", "domain": "", "date": ""} for k, v in texts.items()]
    write_table_atomic(rows_to_table(rows, doc_schema({})), str(root / "pool/docs/part-00000-of-00001.parquet"))
    return str(root / "pool")


def _mix(tmp_path, tokenizer: str, texts: dict[str, str]):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'seq_len = 16\nheldout_fraction = 0.0\n[tokenizer]\npath = "{tokenizer}"\n'
                      f'[runner]\nworkers = 1\nmode = "multi_threading"\n'
                      f'[pools.web]\nsource = "{_pool(tmp_path, texts)}"\n'
                      f'[[phases]]\nname = "p"\ntokens = 64\nweights = {{ web = 1 }}\n')
    return CliRunner().invoke(app, ["mix", str(recipe), "--dry-run", "--quiet"])


def test_assay_mix_with_a_catastrophic_tokenizer_is_one_clear_error(tmp_path, trained):
    path = _with(trained, tmp_path / "evil.json", pre_tokenizer=_split(CATASTROPHIC))
    result = _mix(tmp_path, path, {"d1": ATTACK * 100, "d2": "hello"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, TokenizerError)
    assert result.output.startswith("error: tokenizer") and path in result.output
    assert "(a+)+$" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_document_the_tokenizer_cannot_encode_stops_the_mix_naming_it(tmp_path):
    """A WordPiece tokenizer without an unknown token fails on any word outside its vocabulary: loading it and
    encoding the check sentence work, the pool's one document with a snowman does not."""
    from assay.trainer.tokenizer import CANARY

    words = sorted({w for w in CANARY.split()} | {"hello", "world"})
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *words, *sorted(set(CANARY)),
                                         *(f"##{c}" for c in sorted(set(CANARY)))])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    path = str(tmp_path / "wordpiece.json")
    save_tokenizer(tok, path)
    load_tokenizer(path)  # loads and encodes the check sentence
    result = _mix(tmp_path, path, {"a": "hello world", "b": "hello ☃ world", "c": "world hello"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot encode document 'b' of pool 'web'" in result.output and path in result.output

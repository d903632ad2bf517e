"""The documented example config: it loads, names every key, and its values are the defaults."""
import tomllib
from pathlib import Path

import pytest

from assay.groundwork.config import to_dict
from assay.pipelines.curate.config import CurateConfig, load_curate_config

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "curate.example.toml"


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k != "params":  # filters.params holds free-form datatrove arguments
            out |= keys(v, prefix + k + ".")
    return out


def test_example_config_names_every_key_with_its_default():
    defaults = to_dict(CurateConfig())
    example = tomllib.loads(EXAMPLE.read_text())
    assert keys(defaults) - {"classifiers"} <= keys(example), "add the new keys to configs/curate.example.toml"
    loaded = to_dict(load_curate_config(str(EXAMPLE)))
    for section in ("extract", "langid", "pii", "dedup", "output", "runner"):
        assert loaded[section] == defaults[section], section
    assert loaded["input"]["reader"] == defaults["input"]["reader"]
    loaded["filters"].pop("params"), defaults["filters"].pop("params")  # shown there as datatrove's values
    assert loaded["filters"] == defaults["filters"]


def test_a_retired_key_is_a_clear_error(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text("[filters]\ntokenizer_warmup_chars = 5\n")
    with pytest.raises(Exception, match="tokenizer_warmup_chars.*tokenizer_cache_words"):
        load_curate_config(str(old))


@pytest.mark.parametrize("table, message", [
    ({"filters": {"profile": "c4"}}, "filters.profile: expected one of ['assay', 'fineweb'], got 'c4'"),
    ({"filters": {"view": "code"}}, "filters.view: expected one of ['text', 'prose', ''], got 'code'"),
    ({"filters": {"statistics": "fast"}}, "filters.statistics: expected one of ['assay', 'datatrove', ''], got 'fast'"),
    ({"langid": {"view": "html"}}, "langid.view: expected one of ['text', 'prose'], got 'html'"),
    ({"classifiers": [{"model_dir": "edu", "column": "e", "mode": "keep"}]},
     "classifiers[0].mode: expected one of ['drop', 'annotate'], got 'keep'"),
    ({"runner": {"mode": "threads"}},
     "runner.mode: expected one of ['multi_processing', 'in_memory', 'multi_threading']"),
])
def test_an_enumerated_setting_outside_its_choices_is_refused_with_them(table, message):
    from assay.groundwork.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as err:
        from_dict(CurateConfig, table)
    assert str(err.value).startswith(message)

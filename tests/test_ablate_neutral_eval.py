"""Neutral eval sets: reference text kept out of every recipe's pools is read as documents, written where the
trainer scores held-out sets, and refused (naming the set, the source and the recipe) when a pool's source holds
one of its documents, even re-spaced or re-cased. Real Parquet shards and DuckDB."""
import os

import pyarrow as pa
import pytest

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.groundwork.config import ConfigError
from assay.pipelines.ablate.evalsets import build_eval_sets
from assay.pipelines.ablate.plan import load_plan
from assay.trainer.token_shards import heldout_pools, read_heldout

ARTICLE = "The Nile is a major north-flowing river in northeastern Africa.\nIt flows into the Mediterranean Sea."
OTHER = "Photosynthesis converts light energy into chemical energy stored in sugars."
LINE = "A glacier is a persistent body of dense ice that is constantly moving under its own weight."

RECIPE = """
seed = 1
[pools.web]
source = "{source}"
predicate = "language = 'en'"
[[phases]]
name = "p"
tokens = 1
weights = {{ web = 1.0 }}
"""

PLAN = """
name = "neutral"
[recipes.web]
path = "{root}/web.toml"
[[sizes]]
name = "xs"
tokens = 4096
[eval.sets.ref]
text = "{root}/reference"
"""


def _pool(folder, texts):
    rows = [{"id": f"d{i}", "text": t, "source": "x", "url": "", "domain": "", "date": "", "language": "de"}
            for i, t in enumerate(texts)]
    write_table_atomic(rows_to_table(rows, doc_schema({"language": pa.string()})),
                       os.path.join(folder, "docs", "part-00000-of-00001.parquet"))


def _setup(tmp_path, pool_texts):
    ref = tmp_path / "reference"
    (ref / "wiki").mkdir(parents=True)
    (ref / "wiki" / "nile.txt").write_text(ARTICLE + "\n")
    (ref / "bio.md").write_text(OTHER)
    (ref / "more.jsonl").write_text('{"text": "%s"}\n\n{"text": "  "}\n' % LINE)
    _pool(str(tmp_path / "pool"), pool_texts)
    (tmp_path / "web.toml").write_text(RECIPE.format(source=tmp_path / "pool"))
    (tmp_path / "plan.toml").write_text(PLAN.format(root=tmp_path))
    return load_plan(str(tmp_path / "plan.toml"))


def test_reference_text_out_of_every_pool_is_scored_whole(tmp_path):
    plan = _setup(tmp_path, ["Unrelated page about cooking pasta.", ARTICLE + " And more text."])
    info = build_eval_sets(plan, str(tmp_path / "out"))
    assert info["ref"]["neutral"] is True and info["ref"]["documents"] == 3  # the blank JSONL line is no document
    path = heldout_pools(str(tmp_path / "out" / "evalsets"))["ref"]
    assert sorted(read_heldout(path)) == sorted([ARTICLE, OTHER, LINE])


def test_a_pool_holding_a_reference_document_is_refused_even_respaced_and_recased(tmp_path):
    # the pool's copy differs in case and whitespace and the pool's predicate (language = 'en') would not even
    # select it: the whole source is checked, since its filters judged all of it
    copy = "  the NILE is a major north-flowing river   in northeastern Africa. It flows into the Mediterranean Sea. "
    plan = _setup(tmp_path, ["Unrelated page about cooking pasta.", copy])
    with pytest.raises(ConfigError, match=r"eval\.sets\.ref\.text: not neutral.*recipe\(s\) web.*wiki/nile\.txt = d1"):
        build_eval_sets(plan, str(tmp_path / "out"))


def test_an_eval_set_is_a_source_or_a_text_not_both(tmp_path):
    _setup(tmp_path, ["x"])
    text = (tmp_path / "plan.toml").read_text().replace('text = "', f'source = "{tmp_path}/pool"\ntext = "')
    (tmp_path / "plan.toml").write_text(text)
    with pytest.raises(ConfigError, match="exactly one of `source`"):
        load_plan(str(tmp_path / "plan.toml"))


def test_missing_or_empty_reference_text_says_what_to_give(tmp_path):
    plan = _setup(tmp_path, ["x"])
    plan.eval.sets["ref"].text = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"eval\.sets\.ref\.text: .*not found"):
        build_eval_sets(plan, str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    plan.eval.sets["ref"].text = str(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no non-empty documents"):
        build_eval_sets(plan, str(tmp_path / "out"))

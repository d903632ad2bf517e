"""Recipe validation, the phase sampler and the tokenizer (no Beam here; see test_mix_build.py)."""
import math
import textwrap

import pytest

from assay.groundwork.config import ConfigError
from assay.pipelines.mix.recipe import PhaseSpec, PoolSpec, Recipe, load_recipe, recipe_hash
from assay.pipelines.mix.sampling import BudgetError, plan_phases
from assay.trainer.tokenizer import (
    EOS_TOKEN,
    SPECIAL_TOKENS,
    TokenizerError,
    eos_id,
    load_tokenizer,
    save_tokenizer,
    tokenizer_hash,
    train_bpe,
)

GOOD = """
seed = 1
seq_len = 32
[pools.web]
source = "out/demo"
[pools.edu]
source = "out/demo"
predicate = "language = 'en'"
max_repeats = 2
[[phases]]
name = "phase1"
tokens = 1000
weights = { web = 1 }
[[phases]]
name = "phase2"
tokens = 500
weights = { edu = 3, web = 1 }
"""


def _load(tmp_path, text):
    path = tmp_path / "recipe.toml"
    path.write_text(textwrap.dedent(text))
    return load_recipe(str(path))


def test_good_recipe_loads_with_defaults(tmp_path):
    r = _load(tmp_path, GOOD)
    assert r.pools["edu"].max_repeats == 2 and r.pools["web"].predicate == "true"
    assert r.phases[1].weights == {"edu": 3.0, "web": 1.0}
    assert r.tokenizer.vocab_size == Recipe().tokenizer.vocab_size
    assert recipe_hash(r) == recipe_hash(_load(tmp_path, GOOD))
    assert recipe_hash(r) != recipe_hash(_load(tmp_path, GOOD.replace("seed = 1", "seed = 2")))


@pytest.mark.parametrize("change, field", [
    (("tokens = 500", "tokens = 0"), r"phases\[1\]\.tokens"),
    (("edu = 3", "news = 3"), r"phases\[1\]\.weights\.news: no pool named 'news'"),
    (("max_repeats = 2", "max_repeats = 0"), r"pools\.edu\.max_repeats"),
    (("max_repeats = 2", "max_repeats = 'two'"), r"pools\.edu\.max_repeats: expected int"),
    (("seq_len = 32", "seq_len = 0"), r"seq_len"),
    (('name = "phase2"', 'name = "phase1"'), r"phases\[1\]\.name: phase 'phase1' is defined twice"),
    (("edu = 3", "edu = -1"), r"phases\[1\]\.weights\.edu: must be > 0"),
    (("seed = 1", "seed = 1\ncolour = 'red'"), r"unknown field\(s\) \['colour'\]"),
    (('[pools.edu]\nsource = "out/demo"', "[pools.edu]"), r"pools\.edu\.source: required"),
    (("edu = 3, web = 1 }", "edu = 3, web = 1 }\n[runner]\nrows_per_task = 0"), r"runner\.rows_per_task: must be >= 1"),
    (("edu = 3, web = 1 }", "edu = 3, web = 1 }\n[runner]\nmode = 'fast'"), r"runner\.mode: must be one of"),
])
def test_validation_errors_name_the_field(tmp_path, change, field):
    with pytest.raises(ConfigError, match=field) as info:
        _load(tmp_path, GOOD.replace(*change))
    assert "recipe.toml" in str(info.value)


def test_the_runner_table_is_the_job_runner_config_with_threads_by_default(tmp_path):
    from assay.pipelines.job.runner import RunnerConfig

    r = _load(tmp_path, GOOD + "\n[runner]\nworkers = 3\n")
    assert isinstance(r.runner, RunnerConfig) and r.runner.is_local
    assert (r.runner.workers, r.runner.mode, r.runner.rows_per_task) == (3, "multi_threading", 2000)
    assert recipe_hash(r) == recipe_hash(_load(tmp_path, GOOD))  # how it runs never changes the tokens


def _recipe(budgets, weights, max_repeats, seq_len=9, seed=0):
    return Recipe(seed=seed, seq_len=seq_len,
                  pools={p: PoolSpec(source="x", max_repeats=max_repeats.get(p, 1)) for p in max_repeats},
                  phases=[PhaseSpec(name=f"p{i}", tokens=b, weights=w)
                          for i, (b, w) in enumerate(zip(budgets, weights))])


POOLS = {"a": {f"a{i}": 5 + i % 7 for i in range(40)}, "b": {f"b{i}": 3 + i % 4 for i in range(10)}}


def test_sampling_meets_budgets_by_weight_and_is_deterministic():
    recipe = _recipe([200, 150], [{"a": 1}, {"a": 1, "b": 2}], {"a": 1, "b": 3})
    plans = plan_phases(recipe, POOLS, skipped={})
    assert plans == plan_phases(recipe, POOLS, skipped={})
    assert plans != plan_phases(_recipe([200, 150], [{"a": 1}, {"a": 1, "b": 2}], {"a": 1, "b": 3}, seed=7),
                                POOLS, skipped={})
    for plan, budget in zip(plans, (200, 150)):
        assert plan.sequences * 10 >= budget
        assert plan.document_tokens >= plan.sequences * 10
        for pool, use in plan.pools.items():
            assert use.tokens == sum(POOLS[pool][d] for p, d, _ in plan.docs if p == pool)
            assert use.tokens >= use.quota
            assert use.unique_tokens + use.repeated_tokens == use.tokens
    # phase 2 takes pool a's documents not used by phase 1 (a is not repeated)
    used1 = {d for p, d, _ in plans[0].docs if p == "a"}
    used2 = {d for p, d, _ in plans[1].docs if p == "a"}
    assert not used1 & used2
    b = plans[1].pools["b"]
    assert b.quota == math.ceil(plans[1].sequences * 10 * 2 / 3)
    # pool b holds 43 tokens, so 100 need a third pass; its first pass counts as unique
    assert b.unique_tokens == 43 and b.repeated_tokens > 0 and b.epochs == 3


def test_impossible_budget_names_pool_and_fix():
    recipe = _recipe([100, 400], [{"a": 1}, {"a": 1}], {"a": 1})
    with pytest.raises(BudgetError, match=r"phases\[1\] \('p1'\) needs 400 tokens from pool 'a'.*max_repeats = 1"
                                          r".*already used.*raise pools\.a\.max_repeats to 2"):
        plan_phases(recipe, POOLS, skipped={})
    ok = _recipe([100, 400], [{"a": 1}, {"a": 1}], {"a": 2})
    assert plan_phases(ok, POOLS, skipped={})[1].pools["a"].repeated_tokens > 0


def test_skipped_optional_pool_shares_its_weight():
    recipe = _recipe([100], [{"a": 1, "b": 1}], {"a": 1, "b": 1})
    plan = plan_phases(recipe, {"a": POOLS["a"]}, skipped={"b": "no shards"})[0]
    assert set(plan.pools) == {"a"} and plan.pools["a"].weight == 1.0
    with pytest.raises(BudgetError, match="every pool it draws from was skipped"):
        plan_phases(_recipe([100], [{"b": 1}], {"b": 1}), {}, skipped={"b": "no shards"})


TEXTS = [f"Section {i}: the tokenizer keeps every byte, even é, 漢字 and tabs\t.\n" * (1 + i % 3) for i in range(60)]


def test_tokenizer_trains_round_trips_and_saves(tmp_path):
    tok = train_bpe(TEXTS, vocab_size=400)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert eos_id(tok) == tok.token_to_id(EOS_TOKEN)
    assert 260 < tok.get_vocab_size() <= 400
    for text in TEXTS[:5] + ["<|user|> hi <|end|>", "unseen ☃ text"]:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    assert tok.encode("<|user|>").ids == [1]
    path = str(tmp_path / "tokenizer.json")
    save_tokenizer(tok, path)
    assert tokenizer_hash(load_tokenizer(path)) == tokenizer_hash(tok)
    assert tokenizer_hash(train_bpe(TEXTS, vocab_size=400)) == tokenizer_hash(tok)


def test_tokenizer_errors_say_what_to_do(tmp_path):
    with pytest.raises(TokenizerError, match="leave tokenizer.path empty"):
        load_tokenizer(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(TokenizerError, match="cannot read tokenizer"):
        load_tokenizer(str(bad))
    from tokenizers import Tokenizer, models

    plain = Tokenizer(models.BPE())
    plain.save(str(tmp_path / "plain.json"))
    with pytest.raises(TokenizerError, match="lacks special tokens"):
        load_tokenizer(str(tmp_path / "plain.json"))
    with pytest.raises(TokenizerError, match="vocab_size must be > 260"):
        train_bpe(TEXTS, vocab_size=100)


def test_sample_recipe_is_valid():
    from pathlib import Path

    r = load_recipe(str(Path(__file__).resolve().parents[1] / "recipes" / "sample.toml"))
    assert [p.name for p in r.phases] == ["phase1", "phase2"]
    assert r.pools["synthetic"].optional and not r.pools["web"].optional
    assert set(r.phases[1].weights) == {"web_strict", "synthetic"}

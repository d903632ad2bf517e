"""Evaluations against hand computations: cloze acc / acc_norm, held-out loss and bits-per-byte, task files."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_trainer_support import HELDOUT, build_shards

from assay.trainer.config import ModelConfig
from assay.trainer.eval_cloze import ClozeItem, ClozeTask, evaluate_cloze, load_task
from assay.trainer.eval_heldout import heldout_metrics
from assay.trainer.model import Decoder
from assay.trainer.tokenizer import eos_id, load_tokenizer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("evaldata"))
    build_shards(path, seq_len=16, repeats=1)
    return path, load_tokenizer(f"{path}/tokenizer.json")


def _bias_only_model(bias: torch.Tensor) -> Decoder:
    """Every weight zero except the output bias: log P(token) = log_softmax(bias)[token], whatever the context."""
    model = Decoder(ModelConfig(vocab_size=len(bias), d_model=16, n_layers=1, n_heads=2, n_kv_heads=2,
                                ffn_dim=16, max_seq_len=64, lm_head_bias=True))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.lm_head.bias.copy_(bias)
    return model.eval()


def test_cloze_acc_and_acc_norm_equal_a_hand_computation(data):
    _, tok = data
    vocab = tok.get_vocab_size()
    model = _bias_only_model(torch.zeros(vocab))  # uniform: score = -(continuation tokens) * ln V
    items = [
        ClozeItem("Water boils at", [" one hundred degrees", " zero"], gold=0),
        ClozeItem("The powerhouse of the cell is the", [" mitochondria", " sugar"], gold=1),
        ClozeItem("Two is the only even", [" prime", " number of the divisors"], gold=1),
    ]
    acc = acc_norm = 0
    for item in items:
        n_tokens = [len(tok.encode(item.context + c).ids) - len(tok.encode(item.context).ids) for c in item.choices]
        scores = [-n * math.log(vocab) for n in n_tokens]
        norm = [s / len(c) for s, c in zip(scores, item.choices)]
        acc += scores.index(max(scores)) == item.gold
        acc_norm += norm.index(max(norm)) == item.gold
    result = evaluate_cloze(model, tok, ClozeTask("hand", items), max_len=64, device="cpu", prefix=[eos_id(tok)])
    assert result["items"] == 3 and result["skipped"] == 0
    assert result["acc"] == pytest.approx(acc / 3) and result["acc_norm"] == pytest.approx(acc_norm / 3)
    assert result["acc"] != result["acc_norm"]  # the items were chosen so the normalisation matters


def test_cloze_scores_equal_full_sequence_log_probs(data):
    _, tok = data
    torch.manual_seed(0)
    model = Decoder(ModelConfig(vocab_size=tok.get_vocab_size(), d_model=32, n_layers=2, n_heads=4,
                                ffn_dim=64, max_seq_len=64, init_std=0.5)).eval()
    item = ClozeItem("Plants turn light into", [" sugar", " cats", " revolution"], gold=0)
    eos = eos_id(tok)
    scores = []
    for choice in item.choices:
        ctx = [eos] + tok.encode(item.context).ids
        full = [eos] + tok.encode(item.context + choice).ids
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([full[:-1]]))[0], -1)
        scores.append(sum(logp[i - 1, full[i]].item() for i in range(len(ctx), len(full))))
    best = scores.index(max(scores))
    best_norm = max(range(3), key=lambda i: scores[i] / len(item.choices[i]))
    result = evaluate_cloze(model, tok, ClozeTask("one", [item]), max_len=64, device="cpu", prefix=[eos])
    assert result["acc"] == float(best == 0) and result["acc_norm"] == float(best_norm == 0)


def test_heldout_loss_and_bits_per_byte_by_hand(data):
    path, tok = data
    vocab = tok.get_vocab_size()
    model = _bias_only_model(torch.zeros(vocab))  # every token costs ln V nats
    result = heldout_metrics(model, tok, path, seq_len=4, eos_id=eos_id(tok), device="cpu")  # several windows
    for pool, docs in HELDOUT.items():
        docs = [d for d in docs if d]
        tokens = sum(len(tok.encode(d).ids) for d in docs)
        nbytes = sum(len(d.encode("utf-8")) for d in docs)
        assert result[pool]["tokens"] == tokens and result[pool]["bytes"] == nbytes
        assert result[pool]["loss"] == pytest.approx(math.log(vocab), rel=1e-5)
        assert result[pool]["bits_per_byte"] == pytest.approx(tokens * math.log2(vocab) / nbytes, rel=1e-5)
    assert result["web"]["skipped_empty"] == 1


def test_jsonl_task_skips_bad_lines_with_reasons(tmp_path):
    path = tmp_path / "task.jsonl"
    rows = [{"context": "A", "choices": [" b", " c"], "gold": 1}, {"context": "A", "choices": [" b"], "gold": 0},
            {"context": "A", "choices": [" b", " c"], "gold": 5}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    task = load_task(str(path))
    assert len(task.items) == 1 and task.items[0].gold == 1
    assert [s.split(":")[0] for s in task.skipped] == ["line 2", "line 3", "line 4"]
    with pytest.raises(FileNotFoundError, match="JSONL"):
        load_task(str(tmp_path / "missing.jsonl"))


def test_mmlu_rows_become_cloze_items(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    header = {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
              "answer_d": "answer_d", "correct_answer": "correct_answer", "topic": "topic"}
    row = {"question": "What is 2 + 2?", "answer_a": "3", "answer_b": "4", "answer_c": "5", "answer_d": "22",
           "correct_answer": "B", "topic": "elementary mathematics"}
    path.write_text("\n".join(json.dumps(r) for r in (header, row, {**row, "correct_answer": "E"})) + "\n")
    task = load_task(f"mmlu:{path}")
    assert task.name == "mmlu" and len(task.items) == 1 and len(task.skipped) == 1  # header dropped silently
    item = task.items[0]
    assert item.context == "Question: What is 2 + 2?\nAnswer:" and item.choices == ["3", "4", "5", "22"]
    assert item.delimiter == " "  # scored as " 3" etc.; acc_norm divides by len("3"), as lm-evaluation-harness does
    assert item.gold == 1


def test_shipped_mmlu_copy_loads_as_cloze_items():
    task = load_task("mmlu", limit=200)
    assert task.name == "mmlu" and len(task.items) == 200 and not task.skipped
    assert all(len(item.choices) == 4 and 0 <= item.gold < 4 for item in task.items)
    assert task.items[0].context.startswith("Question: ") and task.items[0].context.endswith("\nAnswer:")


def test_batched_padded_windows_equal_one_at_a_time():
    from assay.trainer.eval_heldout import windows, windows_nll

    torch.manual_seed(0)
    model = Decoder(ModelConfig(vocab_size=60, d_model=32, n_layers=2, n_heads=4, ffn_dim=64, init_std=0.3)).eval()
    ids = torch.randint(0, 60, (23,)).tolist()
    chunks = windows(ids, 5) + windows(ids[:9], 5)  # full windows and short tails in one batch
    assert [len(c) for c in chunks] == [6, 6, 6, 6, 3, 6, 4]
    expected = 0.0
    for c in chunks:
        with torch.no_grad():
            logits = model(torch.tensor([c[:-1]]))[0]
        expected += F.cross_entropy(logits, torch.tensor(c[1:]), reduction="sum").item()
    assert windows_nll(model, chunks, "cpu", batch_size=4) == pytest.approx(expected, rel=1e-5)


def test_a_model_is_scored_on_another_folders_heldout_sets_with_the_shards_tokenizer(data, tmp_path):
    """What the ablation asks of evaluate_model: its own settings, loaded tasks, and the held-out files of a
    folder of eval sets (not the token shards'), tokenized as the shards were."""
    from assay.trainer.config import EvalConfig, RunConfig, TrainConfig
    from assay.trainer.evaluate import evaluate_model
    from assay.trainer.token_shards import write_heldout

    path, tok = data
    vocab = tok.get_vocab_size()
    model = _bias_only_model(torch.zeros(vocab))
    sets = str(tmp_path / "evalsets")
    write_heldout(sets, "facts", [("f1", "Water boils at one hundred degrees.")])
    task = ClozeTask("hand", [ClozeItem("Water boils at", [" one hundred degrees", " zero"], gold=0)])
    run = RunConfig(model=model.cfg, train=TrainConfig(data=path), eval=EvalConfig(heldout_max_docs=1, batch_size=2))
    result = evaluate_model(model, run, "cpu", tasks=[task], heldout_dir=sets)
    seq_len = min(16, model.cfg.max_seq_len)  # the shards' seq_len, at most the model's
    assert result["heldout"] == heldout_metrics(model, tok, sets, seq_len, eos_id(tok), "cpu", max_docs=1, batch_size=2)
    assert set(result["heldout"]) == {"facts"} and result["heldout"]["facts"]["loss"] == pytest.approx(math.log(vocab))
    assert result["tasks"] == {"hand": evaluate_cloze(model, tok, task, seq_len, "cpu", prefix=[eos_id(tok)])}
    run.eval.heldout = False
    assert set(evaluate_model(model, run, "cpu", tasks=[])) == set()  # nothing asked, nothing scored


def test_cloze_prob_correct_is_the_gold_share_of_the_choices_probability(data):
    """Uniform model: P(choice) = V^-tokens, so the gold's share among the choices is known in closed form."""
    _, tok = data
    vocab = tok.get_vocab_size()
    model = _bias_only_model(torch.zeros(vocab))
    items = [ClozeItem("Water boils at", [" one hundred degrees", " zero"], gold=0),
             ClozeItem("Two is the only even", [" prime", " number of the divisors", " odd"], gold=2)]
    expected = 0.0
    for item in items:
        n_tokens = [len(tok.encode(item.context + c).ids) - len(tok.encode(item.context).ids) for c in item.choices]
        expected += vocab ** -n_tokens[item.gold] / sum(vocab ** -n for n in n_tokens)
    result = evaluate_cloze(model, tok, ClozeTask("hand", items), max_len=64, device="cpu", prefix=[eos_id(tok)])
    assert result["prob_correct"] == pytest.approx(expected / len(items))
    assert 0 < result["prob_correct"] < 1 and result["prob_correct"] != pytest.approx(0.5 * 0.5 + 0.5 / 3)

"""Multiple-choice cloze tasks scored as lm-evaluation-harness does.

Task format (JSONL, one item per line):
    {"id": "q1", "context": "The capital of France is", "choices": [" Paris", " Rome"], "gold": 0}
A choice's score is the summed log-probability of its tokens after the context. acc: the argmax choice is
gold; acc_norm: the argmax of score / len(choice in characters) is gold; prob_correct (continuous, for small
models whose accuracy sits at chance): the mean over items of the probability the model gives the gold choice
among the choices, exp(score_gold) / sum of exp(score) (chance = 1 / choices). Context and choice are tokenized
together and split where the context's tokens end (trailing spaces of the context move to the choice),
as the harness does. Malformed lines are skipped and reported with their reason, never fatal.

MMLU in cloze form (`"mmlu"`, or `"mmlu:PATH"`) reads data/eval/mmlu.jsonl.gz (question, answer_a..d, correct_answer,
                                                                               topic):
context "Question: ...\\nAnswer:", choices the four answer texts, joined to the context by a space (the item's
`delimiter`, the harness's `target_delimiter`): the space is scored but not counted in acc_norm's length, so acc
and acc_norm equal lm-evaluation-harness's on the same questions (tests/test_lm_eval_harness.py).
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from assay.trainer.token_shards import row_length

MMLU_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "data", "eval", "mmlu.jsonl.gz")


@dataclass
class ClozeItem:
    """One multiple-choice item scored by the likelihood of each continuation."""

    context: str  # the prompt every choice continues
    choices: list[str]  # the continuations
    gold: int  # index of the right one
    id: str = ""  # the item's id in its file
    delimiter: str = ""  # put before each choice when scoring, not counted in acc_norm's length (target_delimiter)


@dataclass
class ClozeTask:
    """The items of one task file."""

    name: str  # the task's name (its file name, or "mmlu")
    items: list[ClozeItem]  # the items read
    skipped: list[str] = field(default_factory=list)  # "line N: reason"


def _item_from(rec: dict) -> ClozeItem:
    context, choices, gold = rec.get("context"), rec.get("choices"), rec.get("gold")
    if not isinstance(context, str):
        raise ValueError("'context' must be a string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise ValueError("'choices' must be a list of at least two non-empty strings")
    if not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise ValueError(f"'gold' must be an index into choices (0..{len(choices) - 1})")
    return ClozeItem(context, choices, gold, str(rec.get("id", "")))


def _mmlu_item(rec: dict) -> ClozeItem:
    letters = "abcd"
    answer = str(rec.get("correct_answer", "")).strip().lower()
    if answer not in letters or not isinstance(rec.get("question"), str):
        raise ValueError("needs 'question' and 'correct_answer' in A-D")
    choices = [str(rec[f"answer_{x}"]).strip() for x in letters]
    return ClozeItem(f"Question: {rec['question'].strip()}\nAnswer:", choices, letters.index(answer),
                     str(rec.get("topic", "")), delimiter=" ")


def load_task(spec: str, limit: int = 0) -> ClozeTask:
    """A task by path (our JSONL format), "mmlu" (the shipped copy) or "mmlu:PATH" (an MMLU file elsewhere)."""
    is_mmlu = spec == "mmlu" or spec.startswith("mmlu:")
    path = (spec[5:] or MMLU_PATH) if is_mmlu else spec
    if not os.path.isfile(path):
        hint = ("the MMLU copy ships as data/eval/mmlu.jsonl.gz" if is_mmlu else
                "give a JSONL file of {\"context\", \"choices\", \"gold\"} lines (see docs/trainer.md)")
        raise FileNotFoundError(f"cloze task file {path!r} not found; {hint}")
    task = ClozeTask(name="mmlu" if is_mmlu else os.path.splitext(os.path.basename(path))[0], items=[])
    opener = gzip.open if path.endswith(".gz") else open  # task files may be gzipped, like the MMLU copy
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if is_mmlu and rec.get("question") == "question":
                    continue  # the file's header rows
                task.items.append(_mmlu_item(rec) if is_mmlu else _item_from(rec))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                task.skipped.append(f"line {n}: {exc}")
            if limit and len(task.items) >= limit:
                break
    return task


def encode_pair(tokenizer, context: str, continuation: str, prefix: list[int]) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) split from the joint encoding, the harness's way."""
    spaces = len(context) - len(context.rstrip(" "))
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = prefix + tokenizer.encode(context + continuation).ids
    ctx = prefix + tokenizer.encode(context).ids
    return whole[:len(ctx)], whole[len(ctx):]


@torch.no_grad()
def continuation_logprobs(model, requests: list[tuple[list[int], list[int]]], max_len: int, device,
                          batch_size: int = 8) -> list[float]:
    """Summed log P(continuation | context) per (context ids, continuation ids) request, batched with right
    padding; a request longer than one stored row (row_length(max_len) tokens) keeps its last row."""
    scores: list[float] = []
    for i in range(0, len(requests), batch_size):
        seqs = [(ctx + cont)[-row_length(max_len):] for ctx, cont in requests[i:i + batch_size]]
        width = max(len(q) for q in seqs)
        tokens = torch.zeros(len(seqs), width, dtype=torch.long)
        for row, q in enumerate(seqs):
            tokens[row, :len(q)] = torch.tensor(q)
        logp = F.log_softmax(model(tokens[:, :-1].to(device)).float(), dim=-1).cpu()
        for row, ((_, cont), q) in enumerate(zip(requests[i:i + batch_size], seqs)):
            n = len(cont)
            positions = torch.arange(len(q) - 1 - n, len(q) - 1)
            scores.append(logp[row, positions, tokens[row, positions + 1]].sum().item())
    return scores


@torch.no_grad()
def evaluate_cloze(model, tokenizer, task: ClozeTask, max_len: int, device, prefix: list[int] | None = None,
                   batch_size: int = 8) -> dict:
    """{acc, acc_norm, prob_correct, items, skipped, skipped_reasons (first 5)} of a task."""
    was_training = model.training
    model.eval()
    prefix = prefix or []
    skipped = list(task.skipped)
    kept, requests = [], []
    for n, item in enumerate(task.items):
        pairs = [encode_pair(tokenizer, item.context, item.delimiter + choice, prefix) for choice in item.choices]
        if any(not ctx or not cont or len(cont) > max_len for ctx, cont in pairs):
            skipped.append(f"item {item.id or n}: a choice encodes to no tokens or to more than max_len")
            continue
        kept.append(item)
        requests += pairs
    flat = continuation_logprobs(model, requests, max_len, device, batch_size)
    correct = correct_norm = 0
    prob = 0.0
    for item in kept:
        scores, flat = flat[:len(item.choices)], flat[len(item.choices):]
        norm = [s / len(c) if c else float("-inf") for s, c in zip(scores, item.choices)]  # "" only after a delimiter
        correct += int(max(range(len(scores)), key=scores.__getitem__) == item.gold)
        correct_norm += int(max(range(len(norm)), key=norm.__getitem__) == item.gold)
        prob += torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)[item.gold].item()
    model.train(was_training)
    scored = len(kept)
    return {"acc": correct / scored if scored else float("nan"),
            "acc_norm": correct_norm / scored if scored else float("nan"),
            "prob_correct": prob / scored if scored else float("nan"),
            "items": scored, "skipped": len(skipped), "skipped_reasons": skipped[:5]}

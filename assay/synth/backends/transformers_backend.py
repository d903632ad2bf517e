"""Local transformers backend: a model directory or GGUF file on CPU or GPU, batched.

Decoding is our own loop over the model's KV cache rather than `model.generate`, for two reasons: each
prompt samples from its own seeded generator (so a prompt's output does not depend on which other prompts
share its batch, which the request cache and resume rely on), and the log-probability of every chosen
token comes for free.
"""
from __future__ import annotations

import hashlib
import os
import threading

from assay.synth.backends.base import Backend, Completion, ContinuationScore, Messages, Timer, apply_stop
from assay.synth.config import BackendConfig, Sampling


def resolve_model_path(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(directory, gguf file name or None) from a directory, a directory + file name, or a .gguf path."""
    if not model:
        raise ValueError("backend.model is empty: pass a local model directory or a .gguf file (--model PATH)")
    if model.endswith(".gguf") and os.path.isfile(model):
        return os.path.dirname(os.path.abspath(model)), os.path.basename(model)
    if not os.path.isdir(model):
        raise FileNotFoundError(f"model {model!r} is not a local directory or .gguf file; models load from local "
                                "paths only (download it first, then pass its path)")
    if gguf_file is None:
        ggufs = sorted(f for f in os.listdir(model) if f.endswith(".gguf"))
        has_config = os.path.exists(os.path.join(model, "config.json"))
        if ggufs and not has_config:
            gguf_file = ggufs[0]
    if gguf_file and not os.path.isfile(os.path.join(model, gguf_file)):
        raise FileNotFoundError(f"GGUF file {gguf_file!r} not found in {model!r}")
    return os.path.abspath(model), gguf_file


def model_fingerprint(directory: str, gguf_file: str | None) -> str:
    """Name plus a hash of the weights file's size and first MiB: cheap, and changes when the weights do."""
    target = os.path.join(directory, gguf_file) if gguf_file else directory
    h = hashlib.sha256()
    files = [target] if os.path.isfile(target) else sorted(
        os.path.join(target, f) for f in os.listdir(target) if f.endswith((".safetensors", ".bin", ".json")))
    for path in files:
        h.update(os.path.basename(path).encode())
        h.update(str(os.path.getsize(path)).encode())
        with open(path, "rb") as fh:
            h.update(fh.read(FINGERPRINT_HEAD_BYTES))
    name = gguf_file or os.path.basename(directory.rstrip("/"))
    return f"{name}@{h.hexdigest()[:12]}"


#: the last tokens decoded when looking for a stop string after each step: a stop string longer than this many
#: tokens is not seen (stop strings are a few tokens: "\n\n", "</answer>")
STOP_TAIL = 32
#: end-of-turn tokens besides the tokenizer's EOS: ChatML's (Qwen, SmolLM), Llama 3's, Phi-3's, and GPT-2's EOS
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>")
#: bytes read from the start of each weights file for its fingerprint
FINGERPRINT_HEAD_BYTES = 1 << 20


class TransformersBackend(Backend):
    kind = "transformers"

    @classmethod
    def check_config(cls, cfg: BackendConfig) -> None:
        resolve_model_path(cfg.model, cfg.gguf_file)

    def __init__(self, cfg: BackendConfig):
        super().__init__(cfg)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if cfg.device == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        self.directory, self.gguf_file = resolve_model_path(cfg.model, cfg.gguf_file)
        kwargs = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(self.directory, **kwargs)
        dtype = getattr(torch, cfg.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(self.directory, dtype=dtype, **kwargs).to(cfg.device)
        self.model.eval()
        self._id = model_fingerprint(self.directory, self.gguf_file)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        self.end_ids = self._end_token_ids()
        self._tokenizer_lock = threading.Lock()  # the server counts prompt tokens in its connection threads
        self._longest_token: int | None = None

    @property
    def model_id(self) -> str:
        return self._id

    def _end_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        for tok in END_OF_TURN_TOKENS:
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return {i for i in ids if i is not None}

    def encode_chat(self, messages: Messages) -> list[int]:
        with self._tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def prompt_tokens(self, messages: Messages, continuation: str | None = None, cap: int | None = None) -> int:
        """Exact, except that a text too long for `cap` on its characters alone returns a lower bound over
        `cap` without being tokenized (no token spells more characters than the vocabulary's longest entry;
        a 4 MiB prompt takes seconds to tokenize)."""
        if cap is not None:
            if self._longest_token is None:
                self._longest_token = max(len(t) for t in self.tokenizer.get_vocab())
            chars = sum(len(m["content"]) for m in messages) + len(continuation or "")
            if chars // self._longest_token > cap:
                return chars // self._longest_token
        return len(self.encode_chat(messages)) + (len(self._encode(continuation)) if continuation else 0)

    def _left_pad(self, batch: list[list[int]]):
        import torch

        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        return ids.to(self.cfg.device), mask.to(self.cfg.device)

    def _forward(self, ids, mask, past):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past,
                          use_cache=True)

    def generate(self, prompts: list[Messages], sampling: Sampling, seeds: list[int] | None = None) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.cfg.batch_size):
            chunk = prompts[start:start + self.cfg.batch_size]
            chunk_seeds = (seeds or [sampling.seed] * len(prompts))[start:start + self.cfg.batch_size]
            out.extend(self._generate_batch([self.encode_chat(m) for m in chunk], sampling, chunk_seeds))
        return out

    def generate_ids(self, batch: list[list[int]], sampling: Sampling, seeds: list[int]) -> list[Completion]:
        """Generation from already-tokenized prompts (the benchmark feeds both contenders the same ids)."""
        return self._generate_batch(batch, sampling, seeds)

    def _generate_batch(self, batch: list[list[int]], sampling: Sampling, seeds: list[int]) -> list[Completion]:
        import torch
        from transformers import DynamicCache

        with Timer() as timer, torch.inference_mode():
            ids, mask = self._left_pad(batch)
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
            result = self._forward(ids, mask, DynamicCache())
            tokens: list[list[int]] = [[] for _ in batch]
            logprobs: list[list[float]] = [[] for _ in batch]
            tops: list[list[list]] = [[] for _ in batch]
            finished = [False] * len(batch)
            reasons = ["length"] * len(batch)
            for _ in range(sampling.max_new_tokens):
                logp = torch.log_softmax(result.logits[:, -1, :].float(), dim=-1).cpu()
                step = []
                for row in range(len(batch)):
                    if finished[row]:
                        step.append(self.pad_id)
                        continue
                    tok = self._choose(logp[row], sampling, gens[row])
                    if sampling.top_logprobs:
                        best = torch.topk(logp[row], sampling.top_logprobs)
                        tops[row].append([[self.tokenizer.decode([int(i)]), float(v)]
                                          for v, i in zip(best.values, best.indices)])
                    if tok in self.end_ids:
                        finished[row], reasons[row] = True, "stop"
                        step.append(self.pad_id)
                        continue
                    tokens[row].append(tok)
                    logprobs[row].append(float(logp[row, tok]))
                    # a stop string ends within the last few tokens: decode only the tail each step
                    if sampling.stop and apply_stop(self.tokenizer.decode(tokens[row][-STOP_TAIL:]), sampling.stop)[1]:
                        finished[row], reasons[row] = True, "stop"
                    step.append(tok)
                if all(finished):
                    break
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=mask.device)], dim=1)
                next_ids = torch.tensor(step, dtype=torch.long, device=mask.device)[:, None]
                result = self._forward(next_ids, mask, result.past_key_values)
        completions = []
        for row, seq in enumerate(batch):
            text, _ = apply_stop(self.tokenizer.decode(tokens[row], skip_special_tokens=True), sampling.stop)
            want = sampling.logprobs or sampling.top_logprobs > 0
            completions.append(Completion(
                text=text.strip(), tokens_in=len(seq), tokens_out=len(tokens[row]), finish_reason=reasons[row],
                token_logprobs=logprobs[row] if want else None,
                tokens=[self.tokenizer.decode([t]) for t in tokens[row]] if want else None,
                top_logprobs=tops[row] if sampling.top_logprobs else None))
        self.usage.add(sum(len(s) for s in batch), sum(c.tokens_out for c in completions), timer.seconds, len(batch))
        return completions

    @staticmethod
    def _choose(logp, sampling: Sampling, gen) -> int:
        import torch

        if sampling.temperature == 0:
            return int(torch.argmax(logp))
        probs = torch.softmax(logp / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < sampling.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=gen))

    def candidate_token_ids(self, candidates: list[str]) -> dict[str, int]:
        ids = {}
        for cand in candidates:
            enc = self.tokenizer(cand, add_special_tokens=False)["input_ids"]
            if len(enc) != 1:
                raise ValueError(f"score token {cand!r} is {len(enc)} tokens for this tokenizer; rubric scores "
                                 "must be single tokens")
            ids[cand] = enc[0]
        return ids

    def next_token_probs(self, prompts: list[Messages], candidates: list[str]) -> list[dict[str, float]]:
        import torch
        from transformers import DynamicCache

        cand_ids = self.candidate_token_ids(candidates)
        out = []
        for start in range(0, len(prompts), self.cfg.batch_size):
            batch = [self.encode_chat(m) for m in prompts[start:start + self.cfg.batch_size]]
            with Timer() as timer, torch.inference_mode():
                ids, mask = self._left_pad(batch)
                probs = torch.softmax(self._forward(ids, mask, DynamicCache()).logits[:, -1, :].float(), dim=-1).cpu()
            self.usage.add(sum(len(s) for s in batch), 0, timer.seconds, len(batch))
            out.extend({c: float(probs[row, tid]) for c, tid in cand_ids.items()} for row in range(len(batch)))
        return out

    def continuation_logprobs(self, prompts: list[Messages], continuations: list[str]) -> list[ContinuationScore]:
        """One forward pass per batch over chat prompt + continuation tokens (the answer as generation would
        start it: right after the assistant prompt)."""
        import torch
        from transformers import DynamicCache

        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        out: list[ContinuationScore] = []
        for start in range(0, len(prompts), self.cfg.batch_size):
            pairs = []
            for messages, cont in zip(prompts[start:start + self.cfg.batch_size],
                                      continuations[start:start + self.cfg.batch_size]):
                cont_ids = self._encode(cont)
                if not cont_ids:
                    raise ValueError("the continuation to score is empty")
                pairs.append((self.encode_chat(messages), cont_ids))
            with Timer() as timer, torch.inference_mode():
                ids, mask = self._left_pad([p + c for p, c in pairs])
                logp = torch.log_softmax(self._forward(ids, mask, DynamicCache()).logits.float(), dim=-1).cpu()
            width = ids.shape[1]
            for row, (prompt_ids, cont_ids) in enumerate(pairs):
                first = width - len(cont_ids)  # position of the continuation's first token in the padded row
                steps = logp[row, first - 1:width - 1]  # position t predicts token t + 1
                targets = torch.tensor(cont_ids)
                chosen = steps.gather(1, targets[:, None])[:, 0]
                ranks = (steps > chosen[:, None]).sum(dim=1) + 1
                out.append(ContinuationScore(
                    logprob=float(chosen.sum()), tokens=[self.tokenizer.decode([t]) for t in cont_ids],
                    token_logprobs=chosen.tolist(), ranks=ranks.tolist(), token_ids=list(cont_ids),
                    tokens_in=len(prompt_ids)))
            self.usage.add(sum(len(p) + len(c) for p, c in pairs), 0, timer.seconds, len(pairs))
        return out

    def close(self) -> None:
        self.model = None

"""Answers PromptItems with a backend, batch by batch, through the request cache.

Cached answers are returned without touching the model; fresh ones are written to the cache as soon as
their batch finishes. Usage (tokens, seconds, cache hits) accumulates on the backend.
"""
from __future__ import annotations

from assay.synth.backends.base import Backend
from assay.synth.cache import RequestCache, request_key
from assay.synth.config import Sampling
from assay.synth.items import Answer, PromptItem


def answer_items(backend: Backend, items: list[PromptItem], sampling: Sampling,
                 cache: RequestCache | None = None) -> list[Answer]:
    cache = cache if cache is not None else RequestCache(None)
    keys = [request_key(backend.kind, backend.model_id, it.template_id, it.template_hash, sampling, it.seed,
                        it.messages) for it in items]
    answers: list[Answer | None] = [None] * len(items)
    missing = []
    for i, (item, key) in enumerate(zip(items, keys)):
        comp = cache.get_completion(key)
        if comp is None:
            missing.append(i)
        else:
            backend.usage.cache_hits += 1
            answers[i] = Answer(item, comp, backend.model_id, backend.kind, sampling, key, cached=True)
    step = backend.batch_size
    for start in range(0, len(missing), step):  # cache each batch as soon as it is done
        chunk = missing[start:start + step]
        comps = backend.generate([items[i].messages for i in chunk], sampling, seeds=[items[i].seed for i in chunk])
        for i, comp in zip(chunk, comps):
            cache.put_completion(keys[i], comp)
            answers[i] = Answer(items[i], comp, backend.model_id, backend.kind, sampling, keys[i])
    return answers  # type: ignore[return-value]

"""Which documents each phase trains on: per-pool quotas from the phase's weights, filled by walking each
pool in a seeded order, starting a new (reshuffled) epoch of the pool when it runs out, at most
`max_repeats` epochs over the whole mix. Pure and deterministic for a seed; no I/O.

A pool used in several phases continues where the previous phase stopped, so phase 2 sees fresh documents
before any repeats. Tokens counted here include each document's EOS.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from assay.pipelines.mix.recipe import Recipe
from assay.trainer.token_shards import row_length


class BudgetError(ValueError):
    """A phase's budget cannot be met within the pools' repeat limits; the message says what to change."""


@dataclass
class PoolUse:
    weight: float
    quota: int
    documents: int = 0
    tokens: int = 0
    unique_tokens: int = 0  # first use of a document anywhere in the mix
    repeated_tokens: int = 0
    epochs: int = 0  # how many passes over the pool this phase reached into (cumulative over the mix)


@dataclass
class PhasePlan:
    name: str
    budget: int
    sequences: int
    docs: list[tuple[str, str, int]] = field(default_factory=list)  # (pool, id, epoch) in packing order
    pools: dict[str, PoolUse] = field(default_factory=dict)

    @property
    def document_tokens(self) -> int:
        return sum(u.tokens for u in self.pools.values())


def seeded_rank(seed: int, *parts: str) -> bytes:
    """A sort key that orders items pseudo-randomly, reproducibly for a seed."""
    h = hashlib.blake2b(str(seed).encode(), digest_size=8)
    for part in parts:
        h.update(b"\x00" + part.encode("utf-8", "surrogatepass"))
    return h.digest()


class _PoolCursor:
    def __init__(self, name: str, docs: dict[str, int], seed: int):
        self.name, self.docs, self.seed = name, docs, seed
        self.total = sum(docs.values())
        self.epoch, self.pos, self.used = 0, 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[str]:
        return sorted(self.docs, key=lambda i: (seeded_rank(self.seed, "pool", self.name, str(epoch), i), i))

    def next(self) -> tuple[str, int, int]:
        if self.pos == len(self._order):
            self.epoch += 1
            self.pos = 0
            self._order = self._shuffled(self.epoch)
        doc_id = self._order[self.pos]
        self.pos += 1
        self.used += self.docs[doc_id]
        return doc_id, self.docs[doc_id], self.epoch


def phase_quotas(recipe: Recipe, skipped: dict[str, str]) -> list[tuple[int, dict[str, tuple[float, int]]]]:
    """Per phase: (sequences, {pool: (normalised weight, token quota)}), skipped pools left out."""
    row = row_length(recipe.seq_len)
    out = []
    for i, phase in enumerate(recipe.phases):
        weights = {p: w for p, w in phase.weights.items() if p not in skipped}
        if not weights:
            raise BudgetError(f"phases[{i}] ({phase.name!r}): every pool it draws from was skipped "
                              f"({', '.join(f'{p}: {skipped[p]}' for p in phase.weights)}); create one of them "
                              "or give the phase another pool")
        sequences = math.ceil(phase.tokens / row)
        total_w = sum(weights.values())
        out.append((sequences, {p: (w / total_w, math.ceil(sequences * row * w / total_w))
                                for p, w in weights.items()}))
    return out


def plan_phases(recipe: Recipe, pool_tokens: dict[str, dict[str, int]], skipped: dict[str, str]) -> list[PhasePlan]:
    """pool_tokens: {pool: {doc id: tokens incl. EOS}} for every pool that was found (skipped ones absent).

    Each phase gets ceil(budget / row_length(seq_len)) sequences; quotas split that many tokens by weight and each
    pool takes whole documents until its quota is reached (the excess becomes the phase's dropped tail).
    """
    cursors = {name: _PoolCursor(name, docs, recipe.seed) for name, docs in pool_tokens.items()}
    plans = []
    for i, (phase, (sequences, quotas)) in enumerate(zip(recipe.phases, phase_quotas(recipe, skipped))):
        target = sequences * row_length(recipe.seq_len)
        plan = PhasePlan(phase.name, phase.tokens, sequences)
        for pool, (w, quota) in quotas.items():
            cur = cursors[pool]
            spec = recipe.pools[pool]
            capacity = cur.total * spec.max_repeats
            if cur.used + quota > capacity:
                needed = math.ceil((cur.used + quota) / cur.total) if cur.total else None
                fix = (f"raise pools.{pool}.max_repeats to {needed}, " if needed else "")
                raise BudgetError(
                    f"phases[{i}] ({phase.name!r}) needs {quota:,} tokens from pool {pool!r} "
                    f"(weight {w:.3f} of {target:,}), but the pool holds {cur.total:,} tokens in "
                    f"{len(cur.docs):,} documents, max_repeats = {spec.max_repeats} allows {capacity:,} and "
                    f"{cur.used:,} are already used by earlier phases: {fix}lower phases[{i}].tokens or "
                    f"its weight, or loosen pools.{pool}.predicate")
            use = PoolUse(weight=w, quota=quota)
            while use.tokens < quota:
                doc_id, n, epoch = cur.next()
                plan.docs.append((pool, doc_id, epoch))
                use.documents += 1
                use.tokens += n
                if epoch == 0:
                    use.unique_tokens += n
                else:
                    use.repeated_tokens += n
            use.epochs = cur.epoch + 1
            plan.pools[pool] = use
        plan.docs.sort(key=lambda d, name=phase.name: (
            seeded_rank(recipe.seed, "phase", name, d[0], d[1], str(d[2])), d))
        plans.append(plan)
    return plans

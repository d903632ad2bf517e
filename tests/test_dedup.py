"""MinHash-LSH quality on near-duplicates of known Jaccard similarity, and the Beam dedup transforms."""
import random

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from assay.curation.dedup import MinHashConfig, MinHasher, connected_components, jaccard
from assay.curation.document import Document
from assay.pipelines.job.dedup import ExactDedup, FuzzyDedup

VOCAB_RNG = random.Random(7)
VOCAB = ["".join(VOCAB_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(VOCAB_RNG.randint(3, 9)))
         for _ in range(50_000)]


def random_text(rng: random.Random, n_words: int = 300) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n_words)]


def mutate(words: list[str], n_changes: int, rng: random.Random) -> list[str]:
    out = list(words)
    for pos in rng.sample(range(len(out)), n_changes):
        out[pos] = rng.choice(VOCAB)
    return out


def make_pairs(target_changes: int, count: int, seed: int):
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        base = random_text(rng)
        pairs.append((" ".join(base), " ".join(mutate(base, target_changes, rng))))
    return pairs


@pytest.fixture(scope="module")
def hasher():
    return MinHasher(MinHashConfig())


def is_candidate(hasher, a: str, b: str) -> bool:
    return bool(set(hasher.band_keys(a)) & set(hasher.band_keys(b)))


def test_recall_at_jaccard_0_8(hasher):
    # 300-word texts, ~6 random substitutions: 5-gram Jaccard between 0.8 and ~0.9
    pairs = [p for p in make_pairs(6, 400, seed=1) if 0.8 <= jaccard(*p) < 0.9]
    assert len(pairs) >= 200, "the generator should land most pairs in [0.8, 0.9)"
    recall = sum(is_candidate(hasher, a, b) for a, b in pairs) / len(pairs)
    assert recall >= 0.9, f"recall {recall:.3f} at Jaccard 0.8-0.9"


def test_false_positives_at_jaccard_0_3_or_less(hasher):
    pairs = [p for p in make_pairs(60, 400, seed=2) if jaccard(*p) <= 0.3]
    assert len(pairs) >= 300
    fp = sum(is_candidate(hasher, a, b) for a, b in pairs) / len(pairs)
    assert fp < 0.01, f"false-positive rate {fp:.3%} at Jaccard <= 0.3"


def test_candidate_probability_matches_fineweb_numbers():
    cfg = MinHashConfig()
    assert abs(cfg.candidate_probability(0.8) - 0.924) < 0.002
    assert abs(cfg.candidate_probability(0.75) - 0.77) < 0.01


def test_connected_components_pick_smallest_id_in_any_order():
    edges = [("d", "c"), ("c", "b"), ("x", "y"), ("b", "a")]
    first = connected_components(edges)
    second = connected_components(list(reversed(edges)))
    assert first == second
    assert {k for k, v in first.items() if v == "a"} == {"a", "b", "c", "d"}
    assert first["y"] == "x"


def _dedup_ids(docs, workers: int, mode: str):
    with beam.Pipeline(runner=FnApiRunner(), options=beam.options.pipeline_options.PipelineOptions(
            [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"])) as p:
        pcoll = p | beam.Create(docs)
        kept, exact_rej = pcoll | "exact" >> ExactDedup()
        kept, fuzzy_rej = kept | "fuzzy" >> FuzzyDedup(MinHashConfig())
        assert_that(kept | "kept_ids" >> beam.Map(lambda d: d.id), equal_to(EXPECTED_KEPT), label="kept")
        assert_that(exact_rej | "e" >> beam.Map(lambda r: (r.id, r.reason, r.signals["duplicate_of"])),
                    equal_to(EXPECTED_EXACT), label="exact")
        assert_that(fuzzy_rej | "f" >> beam.Map(lambda r: (r.id, r.reason, r.signals["minhash_cluster"])),
                    equal_to(EXPECTED_FUZZY), label="fuzzy")


rng = random.Random(3)
_base = [random_text(rng) for _ in range(4)]
DOCS = [
    Document("d01", " ".join(_base[0])),
    Document("d02", " ".join(_base[0]).upper()),  # exact duplicate after normalization
    Document("d03", " ".join(mutate(_base[0], 3, rng))),  # near duplicate of d01
    Document("d04", " ".join(_base[1])),
    Document("d00", " ".join(mutate(_base[1], 2, rng))),  # near duplicate of d04, smaller id: it wins
    Document("d05", " ".join(_base[2])),
    Document("d06", " ".join(_base[3])),
    Document("d07", "too short to shingle"),
]
EXPECTED_KEPT = ["d01", "d00", "d05", "d06", "d07"]
EXPECTED_EXACT = [("d02", "exact_duplicate", "d01")]
EXPECTED_FUZZY = [("d03", "near_duplicate", "d01"), ("d04", "near_duplicate", "d00")]


def test_beam_dedup_in_one_process():
    _dedup_ids(DOCS, 1, "in_memory")


def test_beam_dedup_same_result_with_two_worker_processes():
    _dedup_ids(list(reversed(DOCS)), 2, "multi_processing")

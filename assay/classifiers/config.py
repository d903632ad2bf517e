"""Every classifier setting with its default, defined once; the CLI and the pipeline stage build these."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

#: what a classifier learns: "binary" targets are 0/1 (reference vs web, or a rubric score cut at `positive_at`);
#: "regression" targets are the rubric scores themselves (0..5)
Task = Literal["binary", "regression"]
TASKS = get_args(Task)
#: how a threshold is chosen on the validation split
ThresholdKind = Literal["best_f1", "target_precision", "target_recall"]
#: a rubric score at or above this counts as positive: FineWeb-Edu's cut of its 0-5 scale (its classifier keeps
#: pages scored >= 3)
POSITIVE_AT = 3.0


@dataclass
class SplitConfig:
    """Fractions of groups (content hashes, or a dedup cluster column) per split; the rest is test."""

    train: float = 0.8  # share of groups in the training split
    valid: float = 0.1  # share of groups in the validation split (thresholds are chosen there)
    seed: str = "assay-labels-v1"  # hashed with each group to place it: the same split on every run

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 <= self.valid < 1 and self.train + self.valid < 1):
            raise ValueError(f"split fractions must satisfy 0 < train, 0 <= valid, train + valid < 1; "
                             f"got train={self.train}, valid={self.valid}")


@dataclass
class FastTextConfig:
    """fastText supervised settings. Small `bucket` x `dim` keeps model files small (bytes = 4*dim*(bucket+vocab))."""

    epoch: int = 25  # passes over the training split
    lr: float = 0.5  # fastText learning rate
    dim: int = 32  # size of word and n-gram vectors
    word_ngrams: int = 2  # longest word n-gram used as a feature
    min_count: int = 1  # words seen fewer times are left out of the vocabulary
    bucket: int = 200_000  # hash buckets for word n-grams
    threads: int = 1  # 1 = reproducible training; raise it for large label sets
    seed: int = 0  # fastText's random seed (reproducible with threads = 1)
    max_chars: int = 20_000  # text beyond this is not read (long pages add little signal)
    split_punctuation: bool = False  # True: "end." -> "end ." (better on tiny label sets, ~4x slower to prepare)
    #: product-quantise the trained model (fastText's .ftz form, kept as model.bin): ~20-50x smaller files for
    #: shipping, scores within about 1e-2; `quantize_cutoff` > 0 also keeps only that many words and n-grams
    quantize: bool = False
    quantize_cutoff: int = 0  # with quantize: words and n-grams kept (0: all)


@dataclass
class EncoderConfig:
    """Frozen sentence encoder + linear head. `encoder_dir` None = the all-MiniLM-L6-v2 package."""

    encoder_dir: str | None = None  # a sentence-transformers folder; None: the all-MiniLM-L6-v2 package
    max_tokens: int = 256  # encoder tokens read per document (the rest is cut)
    batch_size: int = 32  # documents per encoder forward pass
    head_c: float = 1.0  # inverse regularisation of the logistic head
    ridge_alpha: float = 1.0  # regularisation of the ridge head (regression task)
    threads: int | None = None  # torch threads when the encoder loads (process-wide); None = torch's default


@dataclass
class ThresholdPolicy:
    """How eval picks the operating threshold: the best F1, the lowest threshold reaching a precision, or the
    highest threshold keeping a recall (a filter whose job is not to lose good pages)."""

    kind: ThresholdKind = "best_f1"  # which of the three rules picks the threshold
    target_precision: float = 0.9  # kind "target_precision": the precision to reach
    target_recall: float = 0.95  # kind "target_recall": the recall to keep

    def __post_init__(self) -> None:
        if self.kind not in get_args(ThresholdKind):
            raise ValueError(f"threshold policy must be {', '.join(get_args(ThresholdKind))}, got {self.kind!r}")
        if not 0 < self.target_precision <= 1:
            raise ValueError(f"target precision must be in (0, 1], got {self.target_precision}")
        if not 0 < self.target_recall <= 1:
            raise ValueError(f"target recall must be in (0, 1], got {self.target_recall}")

    @classmethod
    def parse(cls, text: str) -> "ThresholdPolicy":
        """'best_f1', 'precision:0.95' or 'recall:0.97' (the CLI form)."""
        if text == "best_f1":
            return cls()
        for prefix, kind in (("precision:", "target_precision"), ("recall:", "target_recall")):
            if text.startswith(prefix):
                try:
                    value = float(text.split(":", 1)[1])
                except ValueError:
                    break
                return cls(kind, target_precision=value) if kind == "target_precision" else cls(kind,
                                                                                                target_recall=value)
        raise ValueError(f"threshold policy {text!r}: use 'best_f1', 'precision:P' (e.g. precision:0.9) or "
                         "'recall:R' (e.g. recall:0.97)")


@dataclass
class ClassifierTrainConfig:
    """What `assay classify train` fits: the kind, its task, and each kind's settings."""

    kind: str = "fasttext"  # "fasttext" or "encoder" (assay/classifiers/kinds.py)
    task: Task = "binary"  # what it learns (Task above)
    positive_at: float = POSITIVE_AT  # rubric score at or above which a document counts as positive
    fasttext: FastTextConfig = field(default_factory=FastTextConfig)  # settings when kind = "fasttext"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # settings when kind = "encoder"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

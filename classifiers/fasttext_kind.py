"""fastText supervised classifier (the DCLM recipe): fast enough to score every page of a crawl.

Binary: labels 0/1, score = P(label 1). Regression ("binned"): rubric scores rounded to the integer bins
0..5, score = the expected bin under the predicted distribution, so it stays on the rubric scale.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from classifiers.base import SCORE_MAX, SCORE_MIN, TextClassifier, check_targets
from classifiers.config import FastTextConfig

_PUNCT = re.compile(r"([^\w\s])")
_LABEL = "__label__"


def fasttext_text(text: str, max_chars: int, split_punctuation: bool = False) -> str:
    """One line of lower-cased whitespace tokens (fastText's input). Splitting punctuation off words helps
    tiny label sets generalise but costs about 4x the time of the default, which keeps tokens as written."""
    text = text[:max_chars].casefold()
    if split_punctuation:
        text = _PUNCT.sub(r" \1 ", text)
    return " ".join(text.split())


class FastTextClassifier(TextClassifier):
    kind = "fasttext"
    model_files = ("model.bin",)

    def __init__(self, task: str = "binary", cfg: FastTextConfig | None = None):
        super().__init__(task)
        self.cfg = cfg or FastTextConfig()
        self.model = None
        self._label_values: np.ndarray | None = None

    def _bin(self, y: float) -> str:
        if self.task == "binary":
            return f"{_LABEL}{int(y)}"
        return f"{_LABEL}{int(round(min(max(y, SCORE_MIN), SCORE_MAX)))}"

    def fit(self, texts: Sequence[str], targets: Sequence[float]) -> None:
        import fasttext

        y = check_targets(self.task, targets)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} targets")
        c = self.cfg
        with tempfile.TemporaryDirectory(prefix="assay-fasttext-") as tmp:
            path = os.path.join(tmp, "train.txt")
            with open(path, "w", encoding="utf-8") as fh:
                for text, target in zip(texts, y):
                    fh.write(f"{self._bin(target)} {fasttext_text(text, c.max_chars, c.split_punctuation)}\n")
            self.model = fasttext.train_supervised(
                input=path, epoch=c.epoch, lr=c.lr, dim=c.dim, wordNgrams=c.word_ngrams, minCount=c.min_count,
                bucket=c.bucket, thread=c.threads, seed=c.seed, verbose=0, loss="softmax")
        self._index_labels()

    def _index_labels(self) -> None:
        self._label_values = np.array([float(lab[len(_LABEL):]) for lab in self.model.get_labels()])

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("classifier is not fitted: call fit() or load a model directory")
        if not len(texts):
            return np.zeros(0, dtype=np.float64)
        c = self.cfg
        lines = [fasttext_text(t, c.max_chars, c.split_punctuation) for t in texts]
        labels, probs = self.model.predict(lines, k=-1, threshold=0.0)
        out = np.empty(len(lines), dtype=np.float64)
        for i, (labs, ps) in enumerate(zip(labels, probs)):
            dist = {float(lab[len(_LABEL):]): float(p) for lab, p in zip(labs, ps)}
            total = sum(dist.values()) or 1.0
            if self.task == "binary":
                out[i] = dist.get(1.0, 0.0) / total
            else:
                out[i] = sum(v * p for v, p in dist.items()) / total
        return out

    def save_files(self, directory: str) -> None:
        self.model.save_model(os.path.join(directory, "model.bin"))

    @classmethod
    def load_files(cls, directory: str, metadata: dict[str, Any]) -> "FastTextClassifier":
        import fasttext

        settings = metadata["settings"]
        clf = cls(metadata["task"], FastTextConfig(**settings["fasttext"]))
        clf.model = fasttext.load_model(os.path.join(directory, "model.bin"))
        clf._index_labels()
        return clf

    def settings(self) -> dict[str, Any]:
        return {"fasttext": asdict(self.cfg)}

    def library_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {**super().library_versions(), "fasttext-numpy2-wheel": version("fasttext-numpy2-wheel")}

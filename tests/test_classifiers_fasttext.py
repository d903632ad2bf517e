"""fastText training survives divergence: a learning rate that diverges on one label set is halved, not fatal."""
import random

import pytest

from assay.classifiers.config import FastTextConfig
from assay.classifiers.fasttext_kind import FastTextClassifier


def _label_set():
    rng = random.Random(0)
    words = [f"w{i}" for i in range(200)]
    texts = [" ".join(rng.choices(words, k=50)) for _ in range(100)]
    return texts, [i % 2 for i in range(100)]


def test_a_diverging_learning_rate_is_halved_and_recorded():
    texts, y = _label_set()
    clf = FastTextClassifier("binary", FastTextConfig(lr=40.0, epoch=25))
    clf.fit(texts, y)
    assert clf.lr_used < 40.0  # lr=40 gives NaN on this set; a halved rate trains
    assert clf.settings()["fasttext_lr_used"] == clf.lr_used
    assert clf.score(texts[:3]).shape == (3,)


def test_a_rate_that_always_diverges_fails_with_what_to_change():
    texts, y = _label_set()
    with pytest.raises(RuntimeError, match="lower fasttext.lr"):
        FastTextClassifier("binary", FastTextConfig(lr=1e6, epoch=50)).fit(texts, y)


def test_a_stable_rate_is_kept():
    texts, y = _label_set()
    clf = FastTextClassifier("binary", FastTextConfig(lr=0.1))
    clf.fit(texts, y)
    assert clf.lr_used == 0.1 and "fasttext_lr_used" not in clf.settings()


def test_training_works_from_a_script_without_a_main_guard(tmp_path):
    """The training child is its own `python -m` process, so a caller's unguarded script is not re-run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "unguarded.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(root)!r})\n"
                      "from tests.test_classifiers_fasttext import _label_set\n"
                      "from assay.classifiers.fasttext_kind import FastTextClassifier\n"
                      "texts, y = _label_set()\nclf = FastTextClassifier()\nclf.fit(texts, y)\n"
                      "print('scored', len(clf.score(texts[:4])))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("scored 4") == 1

"""The classifiers assay ships, loaded by name: `model_dir = "edu"` or `"knowledge"` in a run config.

They are fastText models (quantised) trained by scripts/build_default_classifiers.py on the training split of
the quality corpus (data/quality/train, sources disjoint from the evaluation split); their metadata holds the
training data hash, the threshold and the held-out metrics (docs/quality.md). A folder of the same name in
the working directory wins over a shipped name, so a user's own `edu/` model is never shadowed.
"""
from __future__ import annotations

import os

from assay.curation.model_files import is_remote, local_path

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shipped_models")
#: name -> folder under SHIPPED_DIR
SHIPPED = {
    "edu": "edu-fasttext",  # educational value: manuals, tutorials, reference prose vs spam, menus, chatter
    "knowledge": "knowledge-fasttext",  # knowledge level: durable explanations vs ephemeral changelogs/news
}


def resolve_model_dir(spec: str) -> str:
    """A local model directory for `spec`: a shipped name, a path, or a remote path (gs://, s3://: staged by
    the submitting machine for a remote runner, copied here once per process; assay/curation/model_files.py)."""
    if is_remote(spec):
        return local_path(spec)
    if spec in SHIPPED and not os.path.isdir(spec):
        return os.path.join(SHIPPED_DIR, SHIPPED[spec])
    return spec

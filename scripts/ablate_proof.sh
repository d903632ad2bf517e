#!/usr/bin/env bash
# The proof ablation of plans/ablate_proof.toml, end to end (`make ablate-proof`; sized for about 2 hours of
# ablation on 2 CPU cores after a one-time corpus build and curation, docs/ablate.md). Each input is built only
# when missing or built with other settings (FRESH=1 rebuilds everything and starts the ablation over):
#   out/proof/corpus      scripts/build_ablate_proof_corpus.py: WARC pages (Debian documentation, the real-web
#                         corpus's train sources, the quality corpus's train split) and neutral reference text
#   out/proof/unfiltered  assay run plans/proof/curate_unfiltered.toml  (text extraction only)
#   out/proof/scored      assay run plans/proof/curate_scored.toml      (heuristics + dedup, classifier columns)
# then `assay ablate` of the plan (a rerun resumes; extra arguments go to it, e.g. --dry-run). Cells whose pools
# were rebuilt with other data are rerun (their config hash includes the pools' fingerprint).
# SMOKE=1: a corpus of 20 pages per source and plans/ablate_proof_smoke.toml (a few minutes; decides nothing).
# CLONES: the folder of clones named owner+name (default /work/.mirror); PAGES: pages per source (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${ASSAY:-.venv/bin/assay}
PY=${PYTHON:-.venv/bin/python}
CLONES=${CLONES:-/work/.mirror}
P=out/proof
if [ "${SMOKE:-0}" = 1 ]; then
  PAGES=${PAGES:-20}; PLAN=${PLAN:-plans/ablate_proof_smoke.toml}; CORPUS_ARGS=(--no-quality); RESULT=out/ablate/proof-smoke
else
  PAGES=${PAGES:-600}; PLAN=${PLAN:-plans/ablate_proof.toml}; CORPUS_ARGS=(); RESULT=out/ablate/proof
fi
if [ "${FRESH:-0}" = 1 ]; then rm -rf "$RESULT"; fi
want="{\"max_pages\": $PAGES, \"quality\": $([ ${#CORPUS_ARGS[@]} = 0 ] && echo true || echo false)}"
have=$($PY -c 'import json,sys; b=json.load(open(sys.argv[1])); print(json.dumps({"max_pages": b["max_pages"], "quality": b["quality"]}))' \
       "$P/corpus/build.json" 2>/dev/null || echo none)
if [ "${FRESH:-0}" = 1 ] || [ "$have" != "$want" ]; then
  echo "== corpus: $want (was: $have) -> $P/corpus"
  rm -rf "$P"
  $PY scripts/build_ablate_proof_corpus.py --clones "$CLONES" --out "$P/corpus" --max-pages "$PAGES" "${CORPUS_ARGS[@]}"
fi
inputs=()
for i in $($PY -c 'import json; print(" ".join(json.load(open("out/proof/corpus/build.json"))["inputs"]))'); do
  inputs+=(--input "$i")
done
if [ ! -f "$P/unfiltered/run.json" ]; then
  echo "== curate, text extraction only -> $P/unfiltered"
  $A run plans/proof/curate_unfiltered.toml "${inputs[@]}" --output "$P/unfiltered" --no-progress
fi
if [ ! -f "$P/scored/run.json" ]; then
  echo "== curate, heuristics + dedup + classifier scores -> $P/scored"
  $A run plans/proof/curate_scored.toml "${inputs[@]}" --output "$P/scored" --no-progress
fi
echo "== ablation: $PLAN"
$A ablate "$PLAN" "$@"

#!/usr/bin/env bash
# The demo ablation of plans/sample_demo.toml, end to end on the embedded sample (about 7 minutes on 2 CPU
# cores; `make ablate-demo` runs it). It builds the plan's inputs, each step skipped when its output exists
# (FRESH=1 rebuilds them all and starts the ablation over), then runs the plan (a rerun resumes finished
# cells; cells whose pools changed are rerun):
#   out/demo          assay run on the sample (curated web: the `web` pool)
#   out/demo-scored   out/demo plus two classifier columns, both annotate-only:
#                       edu_score        fastText, reference-vs-web labels (DCLM style): the sample's
#                                        documentation pages vs every other kept page (manifest.jsonl)
#                       knowledge_score  MiniLM encoder + logistic head on the hand-labelled knowledge-level
#                                        seed set (data/labels/knowledge_seed.jsonl): P(durable)
#   out/synth         textbook sections on data/synth/demo_topics.txt from the tiny SmolLM2-135M model
# Models, labels and reports land in out/demo-classifiers/. On a GPU, use a real annotator and generator
# (docs/synth.md) and plans/gpu_scaling.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${ASSAY:-.venv/bin/assay}
PY=${PYTHON:-.venv/bin/python}
C=out/demo-classifiers
if [ "${FRESH:-0}" = 1 ]; then rm -rf out/demo out/demo-edu out/demo-scored out/synth "$C" out/ablate/sample-demo; fi

step() { printf '\n== %s\n' "$*"; }

if [ ! -d out/demo/docs ]; then
  step "curate the sample -> out/demo"
  $A run --output out/demo --no-progress
fi

if [ ! -d out/demo-scored/docs ]; then
  step "edu classifier: documentation pages vs other kept pages (fastText)"
  $A classify labels --shards out/demo --annotations data/sample/manifest.jsonl \
      --positive "category = 'doc'" --negative "category <> 'doc'" --out "$C/labels-edu"
  $A classify train --labels "$C/labels-edu" --kind fasttext --out "$C/edu-ft"
  $A classify eval --model "$C/edu-ft" --labels "$C/labels-edu" --report "$C/report-edu" | head -2
  step "knowledge-level classifier: hand-labelled seed set (MiniLM encoder head)"
  $A classify labels --shards out/demo --annotations data/labels/knowledge_seed.jsonl \
      --positive "label = 'durable'" --negative "label = 'ephemeral'" --out "$C/labels-knowledge"
  $A classify train --labels "$C/labels-knowledge" --kind encoder --out "$C/knowledge-enc"
  $A classify eval --model "$C/knowledge-enc" --labels "$C/labels-knowledge" --report "$C/report-knowledge" | head -2
  step "score out/demo with both (annotate only) -> out/demo-scored"
  $A classify score --model "$C/edu-ft" --shards out/demo --out out/demo-edu --column edu_score --mode annotate
  $A classify score --model "$C/knowledge-enc" --shards out/demo-edu --out out/demo-scored \
      --column knowledge_score --mode annotate
fi

if [ ! -d out/synth/docs ]; then
  step "synthetic textbook sections from the tiny model -> out/synth"
  MODEL=$($PY -c "import os, assay.synth.tiny as t; print(os.path.join(t.tiny_model_dir(), t.GGUF_FILE))")
  $A synth textbooks --topics data/synth/demo_topics.txt --audiences "high school students" \
      --styles "textbook chapter" --max-new-tokens 200 --workers 2 --model "$MODEL" --out out/synth
fi

step "ablation: plans/sample_demo.toml"
$A ablate plans/sample_demo.toml "$@"

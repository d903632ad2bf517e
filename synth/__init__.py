"""Synthetic data for assay: LLM backends, prompt templates, generators (textbooks, verified exercises,
rephrasing), rubric annotation, the code sandbox, the request cache and the coverage report.

Stands on curation/ (Document, Rejection, shards, decontamination); the Beam pipelines that run it live in
pipelines/synth_*.py. See docs/synth.md."""

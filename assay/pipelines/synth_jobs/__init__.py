"""`assay synth` jobs as ShardJob declarations: generate.py (textbooks, exercises, rephrasing), annotate.py
(rubric scores), decontam.py; steps.py holds the LLM steps they share (answering requests on one model per
worker, rubric scoring) and the usage report."""

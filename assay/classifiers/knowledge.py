"""The knowledge-level rubric: is a page durable, reasoning-rich knowledge a small model should learn, or
ephemeral trivia tied to a moment (Phi-3: "the right level of knowledge" for a small model)?

The hand-labelled seed set (data/labels/knowledge_seed.jsonl) follows the binary form; an LLM annotator can
score with the 0-5 form below into a `knowledge_score` column, and both classifier kinds train on either
(`assay classify labels --score-column knowledge_score`, or `--positive "label = 'durable'"` over the seed).
"""
from __future__ import annotations

#: Seed-set labels: positives are "durable", negatives "ephemeral".
DURABLE, EPHEMERAL = "durable", "ephemeral"
SEED_FILE = "data/labels/knowledge_seed.jsonl"

KNOWLEDGE_RUBRIC = """\
Rate how durable and reasoning-rich the knowledge in this page is, from 0 to 5. Add points:
+1 it states facts or instructions that stay true beyond the date it was written;
+1 it explains why or how (mechanisms, causes, trade-offs), not only what happened;
+1 it teaches a procedure, derivation or worked example a reader can reuse;
+1 it is organised as an explanation (definitions before use, steps in order) rather than a list of events;
+1 a student would still learn from it in five years.
Score 0 for ephemera: match results, schedules, prices, release notes and changelogs, event announcements,
dated news, version-specific fix lists. Reply with the number only."""

#: What the binary seed labels mean, for the people labelling.
SEED_GUIDE = {
    DURABLE: "explanations, derivations, procedures, tutorials, concept guides, references that explain semantics",
    EPHEMERAL: "release notes, changelogs, announcements, dated benchmarks or vulnerability lists, schedules, results",
}

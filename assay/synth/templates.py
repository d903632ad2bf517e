"""Our prompt templates, each with a stable id and a content hash recorded in every generated document.

Changing a template's text changes its hash, so the request cache never serves an answer to an old prompt
and documents say exactly which wording produced them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from assay.synth.backends.base import Messages


@dataclass(frozen=True)
class Template:
    """A versioned prompt: its id names its version (e.g. "textbook.topic.v1")."""

    id: str  # versioned name
    system: str  # the system message
    user: str  # str.format fields

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.id}\x00{self.system}\x00{self.user}".encode()).hexdigest()[:16]

    def render(self, **fields: str) -> Messages:
        try:
            user = self.user.format(**fields)
        except KeyError as exc:
            raise ValueError(f"template {self.id} needs field {exc.args[0]!r}") from None
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": user}]


_TEACHER = "You are an experienced teacher who writes clear, correct and engaging study material."

TEMPLATES: dict[str, Template] = {t.id: t for t in [
    Template("textbook.topic.v1", _TEACHER,
             "Write a section of a textbook about \"{topic}\" for {audience}. Style: {style}. Explain the key "
             "ideas step by step, give a worked example, and end with a short summary."),
    Template("textbook.page.v1", _TEACHER,
             "Here is an extract from a web page:\n\n{page}\n\nInspired by it, write a textbook section for "
             "{audience} about the most educational topic it touches. Style: {style}. Do not mention the page."),
    Template("textbook.outline.v1", _TEACHER,
             "Write an outline of a short textbook chapter about \"{topic}\" for {audience}. List {sections} "
             "section titles, one per line, without numbering or any other text."),
    Template("textbook.section.v1", _TEACHER,
             "We are writing a textbook chapter about \"{topic}\" for {audience}. Style: {style}. The chapter's "
             "sections are:\n{outline}\n\nWrite the section \"{section}\" in full."),
    Template("rephrase.encyclopedic.v1", "You rewrite text faithfully and never add facts.",
             "Rewrite the following text in the neutral, well-organised style of an encyclopedia article. Keep "
             "every fact; drop advertising, navigation and chatter.\n\n{text}"),
    Template("rephrase.qa.v1", "You rewrite text faithfully and never add facts.",
             "Turn the following text into a list of diverse question-and-answer pairs that together cover its "
             "information. Format: 'Question: ...' then 'Answer: ...'.\n\n{text}"),
    Template("rephrase.distill.v1", "You rewrite text faithfully and never add facts.",
             "Distill the following text into a concise, clear summary that keeps all the important "
             "information and explanations.\n\n{text}"),
    Template("rephrase.knowledge_list.v1", "You rewrite text faithfully and never add facts.",
             "Extract the knowledge in the following text as a bulleted list of self-contained facts.\n\n{text}"),
    Template("exercise.solve.v1", "You are a careful tutor who solves problems step by step.",
             "Solve the problem below. Show your reasoning in a few short steps, then give the final result on "
             "its own last line as 'Answer: <value>'.\n\nProblem: {problem}"),
    Template("exercise.explain.v1", "You are a careful tutor who explains solutions step by step.",
             "Problem: {problem}\nThe correct answer is {answer}.\nExplain step by step how to reach this answer."),
    Template("exercise.code.v1", "You are an expert Python programmer.",
             "{problem}\nReply with only the Python function in a ```python code block."),
    Template("rubric.edu.v1",
             "You grade web pages for how useful they are for teaching at primary to high-school level.",
             "Score the extract below with this additive rubric (start at 0):\n"
             "+1 if it gives some basic information related to an educational topic, even mixed with ads or "
             "other material.\n+1 if it addresses elements relevant to education but does not align closely "
             "with educational standards, or is superficial.\n+1 if it is suitable for educational use and "
             "introduces key concepts relevant to school curricula, coherently.\n+1 if it is highly relevant "
             "and beneficial for teaching at school level, clearly written, like a chapter of a textbook.\n"
             "+1 if it is outstanding for teaching: detailed reasoning, easy to follow, no irrelevant content.\n"
             "\nExtract:\n{text}\n\nReply with the total score only, a single digit from 0 to 5."),
    Template("rubric.knowledge.v1",
             "You judge how much specialised, factual knowledge a text conveys.",
             "Rate the level of knowledge in the text below on a 0-5 scale:\n"
             "0 no factual content; 1 everyday common knowledge; 2 general facts a news reader knows; "
             "3 subject knowledge taught in secondary school; 4 undergraduate-level or professional knowledge; "
             "5 expert or research-level knowledge explained precisely.\n\nText:\n{text}\n\n"
             "Reply with the rating only, a single digit from 0 to 5."),
]}


def get_template(template_id: str) -> Template:
    if template_id not in TEMPLATES:
        raise ValueError(f"unknown template {template_id!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[template_id]

"""Reasoning exercises whose answers are computed by executing code in the sandbox.

Each exercise is a problem plus a program. The program runs in the sandbox (assay/synth/sandbox/run.py) and its
printed output is the answer; programs also assert their own checks (e.g. substituting an equation's
root back in). Then the model is asked:
* verify="program": to explain the sandbox-computed answer step by step (the answer line of the kept
  document is the sandbox's, never the model's);
* verify="agree": to solve the problem itself; kept only when its final 'Answer:' equals the sandbox's.
Code tasks: the model writes a function; the reference solution and the model's function both run in the
sandbox on the same inputs (edge cases and both outcomes); kept only when every result equals the
reference's with its type (assay/synth/typed_outputs.py: True is not 1, 2 is not 2.0).
Anything that fails (program error, limit hit, mismatch, no answer line) goes to the ledger with the reason.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, get_args

from assay.curation.document import Document, Rejection, stable_id
from assay.synth.config import SandboxLimits
from assay.synth.items import Answer, PromptItem, generator_stage, rejected, to_document
from assay.synth.sandbox import run_python
from assay.synth.seeds import derive_seed
from assay.synth.templates import get_template
from assay.synth.typed_outputs import TYPED, BadOutput, parse, same, show

GENERATOR = "exercise"
STAGE = generator_stage(GENERATOR)
KINDS = ("arithmetic", "algebra", "word_problem", "code")


#: how an exercise's answer is verified: by running a program, or by two answers agreeing
Verify = Literal["program", "agree"]


@dataclass
class ExerciseConfig:
    """`assay synth exercises`: which exercises, how many, and how their answers are checked."""

    kinds: list[str] = field(default_factory=lambda: list(KINDS))  # exercise kinds to generate (KINDS)
    per_kind: int = 4  # exercises per kind
    verify: Verify = "program"  # how an answer is checked (Verify above)
    seed: int = 0  # names the exercises: the same seed makes the same problems
    limits: SandboxLimits = field(default_factory=SandboxLimits)  # of each verifying program run

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown exercise kind(s) {bad}; choose from {', '.join(KINDS)}")
        if self.verify not in get_args(Verify):
            raise ValueError(f"exercise verify must be 'program' or 'agree', got {self.verify!r}")


@dataclass
class ExerciseSpec:
    """One generated exercise with the program that knows its answer."""

    id: str  # stable id derived from kind and seed
    kind: str  # one of KINDS
    problem: str  # the text the model is asked
    program: str  # prints the answer (math) or the reference outputs as JSON (code)
    seed: int  # the seed it was made from
    function: str = ""  # code tasks: the function the model must write
    inputs: list = field(default_factory=list)  # code tasks: argument tuples


# --- problem makers (seeded, so a seed names an exercise) ------------------------------------------

def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b, c, d = (rng.randint(2, 60) for _ in range(4))
    op1, op2 = rng.choice("+-*"), rng.choice(["+", "-", "*", "/"])
    expr = f"({a} {op1} {b}) {op2} {c} - {d}"
    program = (f"from fractions import Fraction as F\nvalue = (F({a}) {op1} F({b})) {op2} F({c}) - F({d})\n"
               "print(value)\n")
    return f"Compute {expr}. Give the exact value (as a fraction if it is not whole).", program


def _algebra(rng: random.Random) -> tuple[str, str]:
    a = rng.choice([i for i in range(-9, 10) if i not in (0,)])
    b, c = rng.randint(-40, 40), rng.randint(-40, 40)
    problem = f"Solve for x: {a}x {'+' if b >= 0 else '-'} {abs(b)} = {c}."
    program = (f"from fractions import Fraction as F\nx = (F({c}) - F({b})) / F({a})\n"
               f"assert F({a}) * x + F({b}) == F({c}), 'root does not satisfy the equation'\nprint(x)\n")
    return problem, program


_WORD = [
    ("A baker makes {n} trays of {k} muffins and sells {s} muffins. How many muffins are left?",
     "left = {n} * {k} - {s}\nassert left >= 0\nprint(left)\n",
     lambda r: dict(n=r.randint(2, 9), k=r.randint(6, 24), s=r.randint(1, 12))),
    ("A train travels {d} km in {t} hours at a constant speed. What is its speed in km per hour?",
     "from fractions import Fraction as F\nprint(F({d}, {t}))\n",
     lambda r: dict(d=r.randint(60, 600), t=r.randint(1, 8))),
    ("Pens cost {p} cents each. Maya buys {n} pens and pays with {m} cents. How much change, in cents, does she get?",
     "change = {m} - {p} * {n}\nassert change >= 0\nprint(change)\n",
     lambda r: (lambda p, n: dict(p=p, n=n, m=p * n + r.randint(0, 300)))(r.randint(15, 90), r.randint(1, 9))),
    ("A rectangle is {w} cm wide and {h} cm long. What is its area in square centimetres?",
     "print({w} * {h})\n", lambda r: dict(w=r.randint(2, 40), h=r.randint(2, 40))),
]


def _word_problem(rng: random.Random) -> tuple[str, str]:
    text, program, params = rng.choice(_WORD)
    values = params(rng)
    return text.format(**values), program.format(**values)


# Test inputs for code tasks: the edge cases of each task (0, 1, 2, negatives where valid, empty inputs) plus
# seeded random ones, chosen so that both outcomes occur: constant answers, off-by-one bounds, a forgotten
# case or a result of the wrong type cannot match the reference on all of them (tests/test_synth_checker.py).
_PRIMES = [n for n in range(3, 200) if all(n % d for d in range(2, int(n ** 0.5) + 1))]
_PRIME_SQUARES = (9, 25, 49, 121, 169)  # a divisor bound of range(2, isqrt(n)) misses exactly these
_ODD_COMPOSITES = [n for n in range(15, 200, 2) if n not in _PRIMES and n not in _PRIME_SQUARES]
_WORDS = ["red", "blue", "sky", "tree", "stone"]


def _prime_inputs(r: random.Random) -> list:
    """12 inputs, 5 of them prime (over a third): 0, 1, 2, a negative prime, 4, a prime's square, odd ones."""
    primes = r.sample(_PRIMES, 4)
    rest = primes + [4, r.choice(_PRIME_SQUARES), *r.sample(_ODD_COMPOSITES, 2)]
    r.shuffle(rest)
    return [[n] for n in (0, 1, 2, -r.choice(primes), *rest)]


def _square_inputs(r: random.Random) -> list:
    return [[0], [1], [2]] + [[r.randint(3, 30)] for _ in range(3)]


def _vowel_inputs(r: random.Random) -> list:
    edges = ["", "AeIoU", "rhythm XYZ"]  # none, all (either case), none with y
    return [[s] for s in edges] + [["".join(r.choice("abcdeiouxyzAEO ") for _ in range(r.randint(1, 12)))]
                                   for _ in range(3)]


def _word_inputs(r: random.Random) -> list:
    edges = ["", "sky", "  red   blue  "]  # no words, one word, extra spaces
    return [[s] for s in edges] + [[" ".join(r.choice(_WORDS) for _ in range(r.randint(2, 5)))] for _ in range(3)]


_CODE = [
    ("sum_of_squares", "Write a Python function `sum_of_squares(n)` that returns 1*1 + 2*2 + ... + n*n (0 for n = 0).",
     "def sum_of_squares(n):\n    return sum(i * i for i in range(1, n + 1))\n", _square_inputs),
    ("count_vowels", "Write a Python function `count_vowels(s)` that returns how many characters of s are vowels "
                     "(aeiou, either case; y is not a vowel).",
     "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n", _vowel_inputs),
    ("is_prime", "Write a Python function `is_prime(n)` that returns True when the integer n is a prime number and "
                 "False otherwise (n may be 0, 1 or negative).",
     "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n", _prime_inputs),
    ("reverse_words", "Write a Python function `reverse_words(s)` that returns the words of s in reverse order, "
                      "joined by single spaces (s may have extra spaces; '' when it has no words).",
     "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n", _word_inputs),
]


def code_harness(solution: str, function: str, inputs: list) -> str:
    """A program that runs `function` on every input and prints the results as one JSON list that keeps their
    types (assay/synth/typed_outputs.py)."""
    return (f"{solution}\n\n{TYPED}\nimport json\n_inputs = json.loads({json.dumps(json.dumps(inputs))})\n"
            f"print(json.dumps([_typed({function}(*args)) for args in _inputs]))\n")


def make_specs(cfg: ExerciseConfig) -> list[ExerciseSpec]:
    makers = {"arithmetic": _arithmetic, "algebra": _algebra, "word_problem": _word_problem}
    specs = []
    for kind in cfg.kinds:
        for index in range(cfg.per_kind):
            seed = derive_seed(cfg.seed, GENERATOR, kind, str(index))
            rng = random.Random(seed)
            spec_id = stable_id("synth", GENERATOR, kind, str(seed))
            if kind == "code":
                function, problem, reference, inputs = rng.choice(_CODE)
                args = inputs(rng)
                specs.append(ExerciseSpec(spec_id, kind, problem, code_harness(reference, function, args), seed,
                                          function, args))
            else:
                problem, program = makers[kind](rng)
                specs.append(ExerciseSpec(spec_id, kind, problem, program, seed))
    return specs


# --- verification -----------------------------------------------------------------------------------

def _reject(spec_or_item_id: str, reason: str, detail: str, text: str = "", **signals) -> Rejection:
    return rejected(GENERATOR, spec_or_item_id, reason, detail, text, signals)


def prepare(spec: ExerciseSpec, cfg: ExerciseConfig) -> PromptItem | Rejection:
    """Run the exercise's program in the sandbox; its answer goes into the request (never trusted blindly:
    a failed or empty run is a ledger record)."""
    result = run_python(spec.program, cfg.limits)
    answer = result.stdout.strip()
    if not result.ok or not answer:
        return _reject(spec.id, f"sandbox_{result.status}" if not result.ok else "no_answer", result.reason(),
                       spec.program, exercise_kind=spec.kind, problem=spec.problem,
                       sandbox_isolation=",".join(result.isolation))
    labels = {"exercise_kind": spec.kind, "topic": spec.kind, "answer": answer,
              "verification": "reference_tests" if spec.kind == "code" else cfg.verify,
              "sandbox_isolation": ",".join(result.isolation)}
    payload = {"problem": spec.problem, "function": spec.function, "inputs": spec.inputs}
    if spec.kind == "code":
        template, fields = get_template("exercise.code.v1"), {"problem": spec.problem}
    elif cfg.verify == "program":
        template, fields = get_template("exercise.explain.v1"), {"problem": spec.problem, "answer": answer}
    else:
        template, fields = get_template("exercise.solve.v1"), {"problem": spec.problem}
    return PromptItem.build(GENERATOR, template, spec.seed, parent_id=spec.id, labels=labels, payload=payload,
                            **fields)


_ANSWER = re.compile(r"answer\s*[:=]\s*\**\s*([^\n]+)", re.IGNORECASE)
_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


_AFTER_NUMBER = re.compile(r"[\w.]|\s*[-+*/^×÷=]")  # "2x", "3 + 4 = 7": the number is not the whole answer


def parse_number(text: str) -> Fraction | None:
    """The value an answer line states ('7/2', '-12', '$1,400', 'x = 3', '42 muffins'), or None when the line
    does not start with a number that stands alone ('2x = 6', '3 + 4 = 7')."""
    cleaned = text.strip().strip("*$.` ").replace(",", "")
    cleaned = re.sub(r"^[a-z]\s*=\s*", "", cleaned, flags=re.IGNORECASE)
    match = re.match(r"^-?\d+(?:\.\d+)?(?:\s*/\s*-?\d+)?", cleaned)
    if not match or _AFTER_NUMBER.match(cleaned, match.end()):
        return None
    try:
        return Fraction(match.group(0).replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


def final_answer(text: str) -> Fraction | None:
    found = _ANSWER.findall(text)
    return parse_number(found[-1]) if found else None


def extract_code(text: str) -> str:
    blocks = _CODE_BLOCK.findall(text)
    return blocks[0] if blocks else text


def check_code(code: str, function: str, inputs: list, expected: str, limits: SandboxLimits) -> tuple[bool, str, str]:
    """(passed, ledger reason, detail): the model's function on the reference inputs, in the sandbox, each
    result type-exactly equal to the reference's (True is not 1, 2 is not 2.0, "2" is not 2)."""
    result = run_python(code_harness(code, function, inputs), limits)
    if not result.ok:
        return False, f"sandbox_{result.status}", result.reason()
    try:
        got, want = parse(result.stdout.strip()), parse(expected)
    except BadOutput as exc:
        return False, "bad_output", f"{exc}: {result.stdout[:200]!r}"
    if len(got) != len(want):
        return False, "bad_output", f"{len(got)} results for {len(want)} inputs"
    for args, g, w in zip(inputs, got, want):
        if not same(g, w):
            call = f"{function}({', '.join(map(repr, args))})"
            return False, "tests_failed", (f"{call} returned {show(g)}, expected {show(w)}; all: got {show(got)}, "
                                           f"expected {show(want)}")
    return True, "", ""


def finish(answer: Answer, cfg: ExerciseConfig) -> Document | Rejection:
    item, text = answer.item, answer.completion.text.strip()
    truth = item.labels["answer"]
    problem = item.payload["problem"]
    signals = dict(item.labels, request_key=answer.request_key)
    if item.labels["exercise_kind"] == "code":
        code = extract_code(text)
        passed, reason, detail = check_code(code, item.payload["function"], item.payload["inputs"], truth, cfg.limits)
        if not passed:
            return _reject(item.id, reason, detail, text, **signals)
        return to_document(answer, f"{problem}\n\n```python\n{code.strip()}\n```\n")
    if cfg.verify == "agree":
        said = final_answer(text)
        if said is None:
            return _reject(item.id, "no_answer_line", "the model gave no 'Answer: <value>' line", text, **signals)
        if said != Fraction(truth):
            return _reject(item.id, "answer_mismatch", f"model said {said}, sandbox computed {truth}", text, **signals)
        body = _ANSWER.split(text)[0].strip()
    else:
        body = text
    if not body:
        return _reject(item.id, "empty_explanation", "the model wrote no explanation", text, **signals)
    return to_document(answer, f"Problem: {problem}\n\nSolution: {body}\n\nAnswer: {truth}\n")

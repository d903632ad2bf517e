"""The exercise checker: a "verified" exercise means the answer is right. Results compare type-exactly (True is
not 1, 2 is not 2.0, "2" is not 2), code tasks' inputs cover the edge cases and both outcomes, and a corpus of
wrong answers (constant answers, off-by-one, type confusion, string numbers) fails verification on every
generated exercise, in-process over hundreds of specs and through the real sandbox on one spec per task,
while the reference solutions pass."""
import json
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest

from assay.curation.document import Document
from assay.synth import exercises
from assay.synth.backends.base import Completion
from assay.synth.config import Sampling, SandboxLimits
from assay.synth.items import Answer
from assay.synth.typed_outputs import TYPED, BadOutput, parse, same, show

#: wall time generous enough for a sandbox to start while another test process loads both cores (`make test` runs
#: two); the CPU limit is what stops a runaway answer
LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=15.0)
REFERENCE = {function: code for function, _, code, _ in exercises._CODE}
_ns: dict = {}
exec(TYPED, _ns)  # the harness's own encoder, run here on trusted values


def typed(value):
    """A value as the sandbox harness reports it, parsed as the checker reads it."""
    return parse(json.dumps([_ns["_typed"](value)]))[0]


def test_comparison_is_type_exact_with_a_tolerance_for_floats_only():
    for got, want in ((1, True), (0, False), (True, 1), (2.0, 2), (2, 2.0), ("2", 2), ("True", True), (None, 0),
                      ([1], (1,)), ((1, 2), [1, 2]), ({1: "a"}, {"1": "a"}), ({1.0: "a"}, {1: "a"}),
                      ({1, 2}, [1, 2]), ({1}, frozenset({1})), ([1, [True]], [1, [1]]), ((1, 2.0), (1, 2)),
                      ({"a": [1]}, {"a": [1.0]}), (1, 1 + 1e-12), (0.1 + 0.2, 0.31), ([1, 2], [1, 2, 3]),
                      (float("nan"), 0.0), (float("inf"), float("-inf"))):
        assert not same(typed(got), typed(want)), (got, want)
    for got, want in ((True, True), (3, 3), (0.1 + 0.2, 0.3), (1e-12, 0.0), (float("nan"), float("nan")),
                      ([(1, "a"), {2: [3.0]}], [(1, "a"), {2: [3.0 + 1e-12]}]), ({3, 1, 2}, {1, 2, 3}),
                      ({"b": 1, "a": 2}, {"a": 2, "b": 1}), (frozenset({(1, 2)}), frozenset({(1, 2)})), ("", "")):
        assert same(typed(got), typed(want)), (got, want)
    assert show(typed([True, 1, 1.0, "1", (1,), {1: None}, set()])) == "[True, 1, 1.0, '1', (1,), {1: None}, set()]"
    for bad in ('{"tuple": [1], "x": 2}', '[{"list": [1]}]', '[{"dict": [[1]]}]', "[1", '"1"', "[" * 5000):
        with pytest.raises(BadOutput):
            parse(bad if bad.startswith(("[", '"')) else f"[{bad}]")


def _specs(per_kind: int = 200) -> list:
    return exercises.make_specs(exercises.ExerciseConfig(kinds=["code"], per_kind=per_kind, seed=11))


def _run(code: str, function: str, inputs: list) -> list:
    ns: dict = {}
    exec(code, ns)  # reference and wrong-answer code written in this file: trusted
    return [typed(ns[function](*args)) for args in inputs]


def test_code_inputs_cover_edge_cases_and_both_outcomes():
    specs = _specs()
    assert {s.function for s in specs} == set(REFERENCE)
    for spec in specs:
        args = [a[0] for a in spec.inputs]
        outputs = _run(REFERENCE[spec.function], spec.function, spec.inputs)
        assert len({json.dumps(o) for o in outputs}) > 1, spec.inputs  # no constant answer matches them all
        if spec.function == "is_prime":
            assert {0, 1, 2, 4} <= set(args) and any(a < 0 for a in args)
            assert set(args) & set(exercises._PRIME_SQUARES) and False in outputs
            assert outputs.count(True) >= len(outputs) / 3, spec.inputs
        elif spec.function == "sum_of_squares":
            assert {0, 1, 2} <= set(args)
        elif spec.function == "count_vowels":
            assert "" in args and any(c.isupper() for a in args for c in a if c in "AEIOU")
            assert 0 in outputs
        else:
            assert "" in args and any("  " in a for a in args) and any(len(a.split()) == 1 for a in args)


WRONG = {  # function -> answers a weak model writes that must never verify
    "sum_of_squares": [
        "def sum_of_squares(n):\n    return 0",
        "def sum_of_squares(n):\n    return n * n",
        "def sum_of_squares(n):\n    return sum(i * i for i in range(n))",  # off by one, low
        "def sum_of_squares(n):\n    return sum(i * i for i in range(1, n + 2))",  # off by one, high
        "def sum_of_squares(n):\n    return n * (n + 1) * (2 * n + 1) / 6",  # a float
        "def sum_of_squares(n):\n    return float(sum(i * i for i in range(n + 1)))",
        "def sum_of_squares(n):\n    return str(sum(i * i for i in range(n + 1)))",  # a string number
        "def sum_of_squares(n):\n    return [sum(i * i for i in range(n + 1))]",
    ],
    "count_vowels": [
        "def count_vowels(s):\n    return 0",
        "def count_vowels(s):\n    return len(s)",
        "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)",  # forgets upper case
        "def count_vowels(s):\n    return sum(c in 'aeiouyAEIOUY' for c in s)",  # counts y
        "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s) + 1",
        "def count_vowels(s):\n    return float(sum(c in 'aeiouAEIOU' for c in s))",
        "def count_vowels(s):\n    return str(sum(c in 'aeiouAEIOU' for c in s))",
        "def count_vowels(s):\n    return [c for c in s if c in 'aeiouAEIOU']",
    ],
    "is_prime": [
        "def is_prime(n):\n    return False",
        "def is_prime(n):\n    return True",
        "def is_prime(n):\n    return n > 1",
        "def is_prime(n):\n    return n % 2 == 1",
        "def is_prime(n):\n    return n in (2, 3, 5, 7)",
        "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5)))",  # misses squares
        "def is_prime(n):\n    return n >= 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))",  # 1 is prime
        "def is_prime(n):\n    n = abs(n)\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))",
        "def is_prime(n):\n    return int(n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1)))",  # 1 / 0
        "def is_prime(n):\n    return str(n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1)))",
        "def is_prime(n):\n    return 'yes' if n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1)) else ''",
    ],
    "reverse_words": [
        "def reverse_words(s):\n    return s",
        "def reverse_words(s):\n    return ''",
        "def reverse_words(s):\n    return s[::-1]",
        "def reverse_words(s):\n    return ' '.join(s.split())",  # not reversed
        "def reverse_words(s):\n    return ' '.join(reversed(s.split(' ')))",  # keeps the extra spaces
        "def reverse_words(s):\n    return ' '.join(reversed(s.split())) + ' '",
        "def reverse_words(s):\n    return list(reversed(s.split()))",
        "def reverse_words(s):\n    return tuple(reversed(s.split()))",
    ],
}


def test_wrong_answers_fail_on_every_generated_exercise():
    for spec in _specs():
        want = _run(REFERENCE[spec.function], spec.function, spec.inputs)
        for wrong in WRONG[spec.function]:
            got = _run(wrong, spec.function, spec.inputs)
            assert not same(got, want), (wrong, spec.inputs)


def _answer(item, text: str) -> Answer:
    return Answer(item, Completion(text, 10, 10, "stop"), "m", "test", Sampling(), "key")


def test_only_the_right_answers_verify_through_the_sandbox():
    cfg = exercises.ExerciseConfig(kinds=["code"], per_kind=8, seed=5, limits=LIMITS)
    specs = {}
    for spec in exercises.make_specs(cfg):
        specs.setdefault(spec.function, spec)
    assert set(specs) == set(WRONG)
    items = {function: exercises.prepare(spec, cfg) for function, spec in specs.items()}
    cases = [(f, REFERENCE[f]) for f in WRONG] + [(f, wrong) for f in WRONG for wrong in WRONG[f]]
    with ThreadPoolExecutor(4) as pool:  # sandbox runs are independent processes
        outs = list(pool.map(lambda c: exercises.finish(_answer(items[c[0]], f"Here:\n```python\n{c[1]}\n```"), cfg),
                             cases))
    for (function, code), out in zip(cases, outs):
        if code == REFERENCE[function]:
            assert isinstance(out, Document), out
        else:
            assert not isinstance(out, Document) and out.reason == "tests_failed", (code, out)
            assert f"{function}(" in out.detail and "expected" in out.detail
    ok, reason, detail = exercises.check_code("def is_prime(n):\n    return n == 2", "is_prime", [[2], [3]],
                                              '[true, true]', LIMITS)
    assert (ok, reason, detail.split(";")[0]) == (False, "tests_failed", "is_prime(3) returned False, expected True")
    ok, reason, _ = exercises.check_code("class B(int): pass\ndef is_prime(n):\n    return B(1)", "is_prime", [[2]],
                                         '[true]', LIMITS)
    assert (ok, reason) == (False, "sandbox_error")  # its own types cannot pose as the right value


def test_agree_mode_keeps_only_an_answer_line_that_states_the_right_value():
    cfg = exercises.ExerciseConfig(kinds=["algebra"], per_kind=1, verify="agree", limits=LIMITS)
    item = exercises.prepare(exercises.make_specs(cfg)[0], cfg)
    truth = Fraction(item.labels["answer"])
    right = [f"Answer: {truth}", f"Answer: x = {truth}", f"Answer: **{truth}**."]
    if truth.denominator == 1:
        right.append(f"Answer: {truth} apples")
    wrong = [f"Answer: {truth + 1}", f"Answer: {truth - 1}", f"Answer: 2x = {truth}", f"Answer: {truth} + 1",
             f"Answer: {truth}x", "Answer: none", "The answer is clear."]
    for line in right:
        assert isinstance(exercises.finish(_answer(item, f"Work it out.\n{line}"), cfg), Document), line
    for line in wrong:
        out = exercises.finish(_answer(item, f"Work it out.\n{line}"), cfg)
        assert not isinstance(out, Document) and out.reason in ("answer_mismatch", "no_answer_line"), line

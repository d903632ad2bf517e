"""Results of sandboxed functions carried out with their types, and compared type-exactly.

A checker that compares with `==` passes wrong answers: `1 == True`, `0 == False`, `2 == 2.0`, and JSON
turns tuples into lists and dict keys into strings. Here the harness in the sandbox writes each result as
JSON that keeps the type (`TYPED` below: a tuple, set or dict becomes a one-key object naming its type; JSON
already tells bool, int, float, str and null apart), and the parent compares the parsed values with
`same`: equal types all the way down (bool is not int, int is not float, list is not tuple), a tolerance
for floats only, containers compared element by element. Anything else the function returns (a class of
its own, an int subclass) fails in the sandbox, so an answer can only pass by being the right value.
"""
from __future__ import annotations

import json
import math

REL_TOL = 1e-9  # floats: relative tolerance ...
ABS_TOL = 1e-9  # ... and absolute, for results near zero
TAGS = ("tuple", "set", "frozenset", "dict")

# Runs inside the sandbox, after the model's code (which cannot change it: it is defined afterwards).
TYPED = '''
def _typed(v):
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if t is list:
        return [_typed(x) for x in v]
    if t is tuple:
        return {"tuple": [_typed(x) for x in v]}
    if t in (set, frozenset):
        return {t.__name__: [_typed(x) for x in v]}
    if t is dict:
        return {"dict": [[_typed(k), _typed(x)] for k, x in v.items()]}
    raise TypeError(f"the function returned a {t.__name__}; return plain values (bool, int, float, str, None, "
                    "list, tuple, set, dict)")
'''


class BadOutput(ValueError):
    """Output that is not what the harness writes: the run did not report its results."""


def parse(text: str) -> list:
    """The harness's output line -> the list of typed results; BadOutput when it is anything else."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise BadOutput(f"not the harness's JSON: {str(exc)[:100]}") from None
    if not isinstance(value, list):
        raise BadOutput("not a list of results")
    _check(value, 0)
    return value


def _check(v, depth: int) -> None:
    if depth > 100:
        raise BadOutput("results nested over 100 deep")
    if isinstance(v, list):
        for x in v:
            _check(x, depth + 1)
    elif isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in TAGS or not isinstance(next(iter(v.values())), list):
            raise BadOutput(f"an object the harness does not write: {str(v)[:80]}")
        tag, items = next(iter(v.items()))
        if tag == "dict" and not all(isinstance(p, list) and len(p) == 2 for p in items):
            raise BadOutput("a dict whose items are not [key, value] pairs")
        _check(items, depth + 1)


def _key(v) -> str:
    """An exact, order-free spelling of a hashable result (set members and dict keys are compared by it)."""
    if isinstance(v, dict):
        tag, items = next(iter(v.items()))
        members = sorted(map(_key, items)) if tag in ("set", "frozenset") else [_key(x) for x in items]
        return json.dumps({tag: members})
    return json.dumps(v)


def same(got, want) -> bool:
    """Type-exact equality of two parsed results; floats within REL_TOL/ABS_TOL (NaN equals NaN)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict):
        (gtag, gitems), (wtag, witems) = next(iter(got.items())), next(iter(want.items()))
        if gtag != wtag or len(gitems) != len(witems):
            return False
        if wtag == "tuple":
            return same(gitems, witems)
        if wtag in ("set", "frozenset"):
            return sorted(map(_key, gitems)) == sorted(map(_key, witems))
        gmap, wmap = {_key(k): v for k, v in gitems}, {_key(k): v for k, v in witems}
        return gmap.keys() == wmap.keys() and all(same(gmap[k], wmap[k]) for k in wmap)
    return got == want


def show(v) -> str:
    """A parsed result as Python would print it (types visible: True vs 1, 2 vs 2.0, (1,) vs [1])."""
    if isinstance(v, list):
        return "[" + ", ".join(map(show, v)) + "]"
    if isinstance(v, dict):
        tag, items = next(iter(v.items()))
        if tag == "tuple":
            return "(" + ", ".join(map(show, items)) + ("," if len(items) == 1 else "") + ")"
        if tag == "dict":
            return "{" + ", ".join(f"{show(k)}: {show(x)}" for k, x in items) + "}"
        if not items:
            return f"{tag}()"
        inner = "{" + ", ".join(map(show, items)) + "}"
        return f"frozenset({inner})" if tag == "frozenset" else inner
    return repr(v)

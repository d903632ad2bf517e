"""Gopher repetition's n-gram statistics, equal to datatrove's, without building every n-gram string.

datatrove's `find_top_duplicate` counts every `" ".join` of n words and `find_all_duplicate` walks every `"".join`
of n words through a set: nine passes that build a Python string per word, about as costly as the rest of the
filters together. Each such n-gram is a substring of one string (the words joined with " ", or with ""), so here:
1. every n-gram of every n gets a polynomial hash of its characters from the string's prefix hashes (numpy);
2. an n-gram whose hash no other n-gram of that n has is a string no other has: it cannot repeat;
3. only n-grams sharing a hash are built as strings, then counted or walked exactly as datatrove does.
Equal hashes are confirmed by the strings themselves, so a hash collision costs time, never a wrong number
(tests compare with datatrove's functions on every page of the quality corpus).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

_MOD = 2_147_483_629  # a prime below 2**31: the product of two residues fits in int64, and a key with n's tag too
_BASE = 911_382_323


class _Powers:
    """base**i and base**-i mod `mod` for i < size, grown by doubling when a longer string comes."""

    def __init__(self, mod: int):
        self.mod = mod
        self.base = _BASE % mod
        self.inv = pow(self.base, -1, mod)
        self.pw = np.ones(1, dtype=np.int64)
        self.ipw = np.ones(1, dtype=np.int64)

    def upto(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        while len(self.pw) < size:
            k = len(self.pw)
            self.pw = np.concatenate([self.pw, self.pw * pow(self.base, k, self.mod) % self.mod])
            self.ipw = np.concatenate([self.ipw, self.ipw * pow(self.inv, k, self.mod) % self.mod])
        return self.pw[:size], self.ipw[:size]


_POWERS: dict[int, _Powers] = {}


class _Substrings:
    """A string's prefix hashes: the hash of any substring in O(1), for many substrings at once."""

    def __init__(self, text: str, mod: int = _MOD):
        self.text, self.mod = text, mod
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        powers = _POWERS.get(mod) or _POWERS.setdefault(mod, _Powers(mod))
        pw, self.ipw = powers.upto(len(codes) + 1)
        self.prefix = np.zeros(len(codes) + 1, dtype=np.int64)
        # each term < 2**52 before the modulo, < 2**31 after; a running sum of < 2**32 of them fits in int64
        np.cumsum(codes * pw[: len(codes)] % mod, out=self.prefix[1:])
        self.prefix %= mod

    def keys(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The hash of each text[start:end], moved to position 0: equal substrings have equal keys (< mod)."""
        return (self.prefix[ends] - self.prefix[starts]) % self.mod * self.ipw[starts] % self.mod


class NgramStats:
    """The n-gram statistics of one document's words, as Gopher repetition computes them, for the n it asks.
    `mod` (a prime below 2**31) sets the hashes' range: a small one makes collisions common, which tests use to
    show that they change no number."""

    def __init__(self, words: list[str], top_ns: list[int], dup_ns: list[int], mod: int = _MOD):
        self.words, self.mod = words, mod
        self._lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self._ends = np.cumsum(self._lengths)  # end of word i in "".join(words)
        self._top_ns, self._dup_ns = list(top_ns), list(dup_ns)
        self._top: dict[int, int | None] | None = None
        self._dup: dict[int, int] | None = None

    def top_duplicate_chars(self, n: int) -> int | None:
        """datatrove's `find_top_duplicate(get_n_grams(words, n))`: characters of the most frequent " "-joined
        n-gram (the first seen among equals) times its count; None where there is no n-gram."""
        if self._top is None:
            self._top = self._all_top()
        return self._top[n]

    def duplicate_chars(self, n: int) -> int:
        """datatrove's `find_all_duplicate(words, n)`: characters of ""-joined n-grams seen before, walking
        left to right and jumping past each repeat."""
        if self._dup is None:
            self._dup = self._all_dup()
        return self._dup[n]

    @staticmethod
    def _grams(ns: list[int], n_words: int):
        """(n, first, count) of each n's n-grams, by position in the concatenation of all of them."""
        out, first = [], 0
        for n in ns:
            count = max(n_words - n + 1, 0)
            out.append((n, first, count))
            first += count
        return out

    def _keyed(self, text: str, starts: np.ndarray, ends: np.ndarray, ns: list[int]):
        """Keys of every n-gram of every n, made distinct between different n, and the n-grams' bounds."""
        grams = self._grams(ns, len(self.words))
        gram_starts = np.concatenate([starts[:count] for _, _, count in grams] or [starts[:0]])
        gram_ends = np.concatenate([ends[n - 1:n - 1 + count] for n, _, count in grams] or [ends[:0]])
        tag = np.concatenate([np.full(count, i, dtype=np.int64) for i, (_, _, count) in enumerate(grams)]
                             or [starts[:0]])
        keys = _Substrings(text, self.mod).keys(gram_starts, gram_ends) + (tag << 31)
        return grams, gram_starts, gram_ends, keys

    def _all_top(self) -> dict[int, int | None]:
        text = " ".join(self.words)
        ends = self._ends + np.arange(len(self.words), dtype=np.int64)  # end of word i in " ".join(words)
        grams, starts, stops, keys = self._keyed(text, ends - self._lengths, ends, self._top_ns)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        seen_as_often = counts[inverse]  # per n-gram: how many n-grams of its n share its hash
        result: dict[int, int | None] = {}
        for n, first, count in grams:
            if count == 0:
                result[n] = None
                continue
            these = seen_as_often[first:first + count]
            # the first n-gram whose hash is seen most often: the first seen of the most frequent hashes
            top = first + int(np.argmax(these == these.max()))
            members = np.flatnonzero(keys[first:first + count] == keys[top]) + first
            strings = set(map(text.__getitem__, map(slice, starts[members].tolist(), stops[members].tolist())))
            if len(strings) == 1:  # one string: its count is the hash's, and no other string is seen as often
                result[n] = len(strings.pop()) * len(members)
            else:  # two strings with one hash: count the strings themselves
                found = Counter(text[a:b] for a, b in zip(starts[first:first + count].tolist(),
                                                          stops[first:first + count].tolist()))
                gram, top_count = found.most_common(1)[0]
                result[n] = len(gram) * top_count
        return result

    def _all_dup(self) -> dict[int, int]:
        text = "".join(self.words)
        ends = self._ends
        grams, starts, stops, keys = self._keyed(text, ends - self._lengths, ends, self._dup_ns)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[inverse] > 1)  # ascending: by n, then by position
        bounds = np.searchsorted(shared, [first for _, first, _ in grams] + [len(keys)]).tolist()
        shared_l, starts_l, stops_l = shared.tolist(), starts[shared].tolist(), stops[shared].tolist()
        result: dict[int, int] = {}
        for k, (n, first, _) in enumerate(grams):
            seen: set[str] = set()
            repeated, idx = 0, 0
            # every other n-gram is unique: the walk passes it one step at a time and it changes nothing
            for j in range(bounds[k], bounds[k + 1]):
                i = shared_l[j] - first
                if i < idx:
                    continue
                gram = text[starts_l[j]:stops_l[j]]
                if gram in seen:
                    repeated += len(gram)
                    idx = i + n
                else:
                    seen.add(gram)
                    idx = i + 1
            result[n] = repeated
        return result

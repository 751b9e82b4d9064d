"""Candidate words for typo correction: the lexicon words that can still reach ``fuzz.ratio >= cutoff``
against a token, so rapidfuzz's extractOne scores a few words instead of the whole lexicon.

fuzz.ratio(a, b) = 100 * (1 - indel / (n + m)) with indel = n + m - 2 * LCS (n, m: the lengths), and
the longest common subsequence cannot exceed the letters the two words share counted with
multiplicity, B = sum over letters c of min(count_a(c), count_b(c)) <= min(n, m). So
ratio <= 200 * B / (n + m): a word below the cutoff by that bound cannot be the answer. extractOne keeps
the first best-scoring choice; the kept words keep the lexicon's iteration order, so its answer over
the candidates is its answer over the whole lexicon.
"""

from __future__ import annotations

from collections import Counter

# Rounding margin (ratio points): a word kept in excess never changes extractOne's answer.
_MARGIN = 0.5


class _Bucket:
    """The lexicon words whose length allows the cutoff against n-letter tokens, with their letter
    counts (one row per letter) for the shared-letter bound."""

    def __init__(self, words: list[str]) -> None:
        import numpy as np  # here, not at import: parsing alone should not load numpy

        self.words = words
        sizes = [len(w) for w in words]
        self.sizes = np.asarray(sizes, dtype=np.float64)
        codes = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        rows = np.repeat(np.arange(len(words)), sizes)
        letters, inverse = np.unique(codes, return_inverse=True)
        flat = np.bincount(inverse * len(words) + rows, minlength=len(letters) * len(words))
        self.counts = flat.reshape(len(letters), len(words)).astype(np.int32)
        self.row_of = {chr(c): i for i, c in enumerate(letters.tolist())}

    def candidates(self, token: str, cutoff: float) -> list[str]:
        import numpy as np

        shared = np.zeros(len(self.words), dtype=np.int32)
        for letter, k in Counter(token).items():
            row = self.row_of.get(letter)
            if row is not None:
                shared += np.minimum(self.counts[row], k)
        keep = 200.0 * shared >= (cutoff - _MARGIN) * (self.sizes + len(token))
        return [self.words[i] for i in np.flatnonzero(keep).tolist()]


class _LexiconChoices:
    """A lexicon's words in its iteration order, and per (token length, cutoff) a :class:`_Bucket`."""

    def __init__(self, lexicon: frozenset[str]) -> None:
        self.lexicon = lexicon  # the last lexicon object seen with this content and order
        self.order = list(lexicon)
        self.lengths = [len(w) for w in self.order]
        self.buckets: dict[tuple[int, float], _Bucket] = {}

    def bucket(self, n: int, cutoff: float) -> _Bucket:
        hit = self.buckets.get((n, cutoff))
        if hit is None:
            bound = cutoff - _MARGIN
            ok = {m for m in set(self.lengths) if 200.0 * min(n, m) / (n + m) >= bound}
            words = [w for w, m in zip(self.order, self.lengths, strict=True) if m in ok]
            hit = self.buckets[(n, cutoff)] = _Bucket(words)
        return hit


# (lexicon hash, size) -> its candidate lists; survives an equal lexicon rebuilt in the same order
_CHOICES: dict[tuple[int, int], _LexiconChoices] = {}


def _choices(lexicon: frozenset[str]) -> _LexiconChoices:
    """Per-lexicon state, built once per lexicon content (an equal lexicon object is reused only when it
    iterates in the same order, so extractOne's tie-breaking is unchanged)."""
    key = (hash(lexicon), len(lexicon))
    hit = _CHOICES.get(key)
    if hit is None or hit.lexicon is not lexicon:
        if hit is None or hit.order != list(lexicon):
            if len(_CHOICES) > 8:
                _CHOICES.clear()
            hit = _CHOICES[key] = _LexiconChoices(lexicon)
        hit.lexicon = lexicon
    return hit


def length_choices(lexicon: frozenset[str], n: int, cutoff: float) -> list[str]:
    """The words of *lexicon* whose length alone allows ``fuzz.ratio >= cutoff`` against an *n*-letter
    token (ratio <= 200 * min(n, m) / (n + m)), in the lexicon's order."""
    return _choices(lexicon).bucket(n, cutoff).words


def typo_candidates(lexicon: frozenset[str], token: str, cutoff: float) -> list[str]:
    """The words of *lexicon* that can score ``fuzz.ratio >= cutoff`` against *token* by the length and
    shared-letter bounds (module docstring), in the lexicon's order."""
    return _choices(lexicon).bucket(len(token), cutoff).candidates(token, cutoff)

"""Learn a site's shorthand from labelled pairs: exam-name tokens the parser does not know, associated
with the words of the accepted catalogue rows. Only associations seen in enough distinct names, and
consistent enough across them, are kept; they become extra phrase rewrites for the engine
(``LookupEngine(extra_vocabulary=...)``), never answers on their own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from nhs_lookup.components import STRUCTURAL_WORDS
from nhs_lookup.normalize import apply_symbols, normalize_tokens, strip_noise, tokenize
from nhs_lookup.records import Case
from nhs_lookup.vocab import Vocabulary, default_vocabulary

MIN_SUPPORT = 2  # distinct exam names that must contain the token (and share the word)
MIN_SHARE = 0.6  # share of those names whose accepted row holds the word
MAX_WORDS = 4
# Case-specific qualifiers: a shorthand rarely means a side or a contrast phase.
EXCLUDED_WORDS = frozenset({"left", "right", "bilateral", "both", "lt", "rt", "with", "without", "contrast"})


@dataclass(frozen=True)
class Association:
    """One learned rewrite: *token* in an exam name stands for *words* of the catalogue."""

    token: str
    words: tuple[str, ...]
    names: int  # distinct exam names containing the token (labelled with a row)
    support: int  # of those, names whose accepted row holds every kept word (the weakest word's count)

    @property
    def phrase(self) -> str:
        return " ".join(self.words)


def raw_tokens(text: str, vocab: Vocabulary) -> list[str]:
    """Tokens as the phrase rewriter sees them (after noise removal and symbol rewrites)."""
    return tokenize(apply_symbols(strip_noise(text, vocab), vocab))


def unknown_tokens(text: str, vocab: Vocabulary, lexicon: Collection[str]) -> set[str]:
    """Tokens of *text* that neither the catalogue lexicon nor the vocabulary's phrases know."""
    out = set()
    for tok in raw_tokens(text, vocab):
        if len(tok) < 2 or tok.isdigit() or tok in lexicon or tok in vocab.phrases:
            continue
        out.add(tok)
    return out


def _row_words(name: str, vocab: Vocabulary) -> list[str]:
    seen: list[str] = []
    for w in normalize_tokens(name, vocab):
        if w not in STRUCTURAL_WORDS and w not in EXCLUDED_WORDS and not w.isdigit() and w not in seen:
            seen.append(w)
    return seen


def learn_associations(
    cases: Iterable[Case],
    lexicon: Collection[str],
    vocab: Vocabulary | None = None,
    *,
    min_support: int = MIN_SUPPORT,
    min_share: float = MIN_SHARE,
) -> list[Association]:
    """Token -> catalogue words from labelled pairs (cases with an accepted row), deterministic order."""
    vocab = vocab or default_vocabulary()
    seen_names: set[str] = set()
    names_with: Counter[str] = Counter()
    pair: dict[str, Counter[str]] = defaultdict(Counter)
    first_pos: dict[tuple[str, str], int] = {}
    for case in cases:
        if case.no_match or not case.acceptable:
            continue
        key = " ".join(normalize_tokens(case.query.exam_name, vocab))
        if key in seen_names:
            continue
        seen_names.add(key)
        unknown = unknown_tokens(case.query.exam_name, vocab, lexicon)
        if not unknown:
            continue
        name_words = set(normalize_tokens(case.query.exam_name, vocab))
        row_words = [w for w in _row_words(case.acceptable[0], vocab) if w not in name_words]
        for tok in unknown:
            names_with[tok] += 1
            for i, w in enumerate(row_words):
                pair[tok][w] += 1
                first_pos.setdefault((tok, w), i)
    out = []
    for tok in sorted(names_with):
        n = names_with[tok]
        if n < min_support:
            continue
        kept = [w for w, k in pair[tok].items() if k >= min_support and k / n >= min_share]
        if not kept:
            continue
        kept.sort(key=lambda w: (-pair[tok][w], first_pos[(tok, w)], w))
        words = tuple(sorted(kept[:MAX_WORDS], key=lambda w: (first_pos[(tok, w)], w)))
        out.append(Association(tok, words, n, min(pair[tok][w] for w in words)))
    return out


def as_vocabulary(associations: Iterable[Association]) -> dict[str, str]:
    """The engine hook's form: token -> catalogue phrase."""
    return {a.token: a.phrase for a in associations}

"""Text normalisation shared by exam names and catalogue rows.

Pipeline: lower-case -> drop RIS code before "^" -> remove admin noise -> symbol rewrites (C+, C-,
w/wo, x-ray, ordinals, "&") -> tokens -> phrase rewrites (abbreviations, synonyms, canonical
anatomy; longest phrase first) -> optional typo correction of unknown tokens against a lexicon.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import lru_cache

from nhs_lookup.regex_guard import Guard, literal_guard, may_match
from nhs_lookup.typo_candidates import typo_candidates
from nhs_lookup.vocab import Vocabulary, default_vocabulary

_TOKEN = re.compile(r"[a-z0-9]+")
_CARET_CODE = re.compile(r"^\s*[a-z0-9_.\-]*\^")


# id(pattern list) -> (the list, kept so its id is never reused; its length; (pattern, repl, guard)s)
_GUARDED: dict[int, tuple[list, int, tuple[tuple[re.Pattern[str], str, Guard], ...]]] = {}


def _guarded(patterns: list, noise: bool) -> tuple[tuple[re.Pattern[str], str, Guard], ...]:
    """*patterns* (noise patterns, or (pattern, replacement) symbol rewrites) with their literal
    guards, computed once per list (vocabulary pattern lists are not mutated after loading)."""
    hit = _GUARDED.get(id(patterns))
    if hit is None or hit[0] is not patterns or hit[1] != len(patterns):
        pairs = [(p, " ") for p in patterns] if noise else patterns
        hit = (patterns, len(patterns), tuple((p, r, literal_guard(p)) for p, r in pairs))
        _GUARDED[id(patterns)] = hit
    return hit[2]


def _apply(text: str, guarded: tuple[tuple[re.Pattern[str], str, Guard], ...]) -> str:
    """``pattern.sub(repl, text)`` in order, skipping patterns whose guard rules a match out."""
    for pattern, repl, guard in guarded:
        if guard is None or may_match(guard, text):
            text = pattern.sub(repl, text)
    return text


def strip_noise(text: str, vocab: Vocabulary | None = None) -> str:
    """Lower-case, drop a leading "CODE^" and administrative noise; keep everything else."""
    vocab = vocab or default_vocabulary()
    t = text.lower()
    if "^" in t:  # _CARET_CODE needs one
        t = _CARET_CODE.sub(" ", t)
    return _apply(t, _guarded(vocab.noise, True))


def apply_symbols(text: str, vocab: Vocabulary) -> str:
    return _apply(text, _guarded(vocab.symbols, False))


def rewrite_phrases(tokens: list[str], vocab: Vocabulary) -> list[str]:
    """Replace known phrases (longest first, left to right) by their canonical form."""
    return rewrite_exact(tokens, vocab.phrases, max_len=len(tokens))


def correct_typos(tokens: list[str], lexicon: Collection[str], cutoff: float = 88.0) -> list[str]:
    """Replace tokens absent from *lexicon* by their closest lexicon word (strict cutoff, >= 5 letters)."""
    # frozensets cache their hash, so the key costs nothing after the first call
    key = (hash(lexicon), len(lexicon), cutoff) if isinstance(lexicon, frozenset) else None
    cache = _TYPO_CACHE.setdefault(key, {}) if key is not None else {}
    if len(cache) > 50_000:
        cache.clear()
    out = []
    for tok in tokens:
        if len(tok) >= 5 and tok.isalpha() and tok not in lexicon:
            fixed = cache.get(tok)
            if fixed is None:
                from rapidfuzz import fuzz, process  # imported when first needed (start-up time)

                choices = typo_candidates(lexicon, tok, cutoff) if key is not None else lexicon
                hit = process.extractOne(tok, choices, scorer=fuzz.ratio, score_cutoff=cutoff)
                fixed = cache[tok] = hit[0] if hit is not None else tok
            tok = fixed
        out.append(tok)
    return out


# (lexicon hash, size, cutoff) -> token -> correction
_TYPO_CACHE: dict[tuple[int, int, float], dict[str, str]] = {}


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


# first word -> (length, words, value) of each phrase of a map, longest first
PhraseIndex = dict[str, list[tuple[int, tuple[str, ...], str]]]
# id(phrase map) -> (the map, kept so its id is never reused; its size; its index)
_INDEXES: dict[int, tuple[Mapping[str, str], int, PhraseIndex]] = {}


def phrase_index(phrases: Mapping[str, str]) -> PhraseIndex:
    """Index of a phrase map for matching at a token without joining token slices: a key matches
    tokens[i:i+k] exactly when ``" ".join(tokens[i:i+k]) == key``, i.e. when ``key.split(" ")``
    equals the slice (tokens are non-empty and hold no whitespace). Built once per map; a rebuilt map
    with equal content (a vocabulary extended again with the same terms) reuses the index."""
    hit = _INDEXES.get(id(phrases))
    if hit is not None and hit[0] is phrases and hit[1] == len(phrases):
        return hit[2]
    index = next((h[2] for h in _INDEXES.values() if h[1] == len(phrases) and h[0] == phrases), None)
    if index is None:
        index = {}
        for key, value in phrases.items():
            words = tuple(key.split(" "))
            index.setdefault(words[0], []).append((len(words), words, value))
        for entries in index.values():
            entries.sort(key=lambda e: -e[0])  # one phrase per length and first word: order is free
    if len(_INDEXES) > 64:
        _INDEXES.clear()
    _INDEXES[id(phrases)] = (phrases, len(phrases), index)
    return index


def rewrite_exact(tokens: list[str], phrases: Mapping[str, str], max_len: int = 3) -> list[str]:
    """Replace the phrases of *phrases* of at most *max_len* words (longest first, left to right): the
    modality-conditioned abbreviations, applied before the general ones, and (through
    :func:`rewrite_phrases`) the vocabulary's own."""
    index = phrase_index(phrases)
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        for k, words, value in index.get(tokens[i], ()):
            if k <= max_len and (k == 1 or tuple(tokens[i : i + k]) == words):
                out.extend(value.split())
                i += k
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def normalize_tokens(
    text: str,
    vocab: Vocabulary | None = None,
    lexicon: Collection[str] | None = None,
    modality_phrases: Mapping[str, str] | None = None,
    *,
    stripped: str | None = None,
) -> list[str]:
    """The canonical token list of *text* (see module docstring). *modality_phrases*: rewrites that
    hold for the name's modality only (``indications.yaml`` ``modality_abbreviations``). *stripped*: ``strip_noise(text)`` when the caller has it already."""
    vocab = vocab or default_vocabulary()
    t = apply_symbols(stripped if stripped is not None else strip_noise(text, vocab), vocab)
    tokens = tokenize(t)
    if modality_phrases:
        tokens = rewrite_exact(tokens, modality_phrases)
    if lexicon:
        tokens = correct_typos(tokens, lexicon)
    return rewrite_phrases(tokens, vocab)


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Canonical normalised text with the bundled vocabulary (cached)."""
    return " ".join(normalize_tokens(text))

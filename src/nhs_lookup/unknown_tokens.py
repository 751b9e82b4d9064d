"""Which words of a site's exam names the parser does not understand (the vocabulary worklist).

A token is *understood* when the catalogue uses it (its lexicon, after normalisation) or the bundled
vocabulary knows it (abbreviations, anatomy, modalities, techniques, actions, indications, context and
structural words). Everything else is counted, with example names, so a coder can add the frequent
ones to the YAML vocabulary (``nhs_lookup/data``) before a new site goes live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from nhs_lookup.components import GENERIC_MODALITY_TOKENS, STRUCTURAL_WORDS, first_modality
from nhs_lookup.normalize import normalize_tokens, strip_noise, tokenize
from nhs_lookup.records import ExamQuery
from nhs_lookup.vocab import Vocabulary, default_vocabulary

MAX_EXAMPLES = 3


@dataclass
class UnknownToken:
    """One token the parser does not understand, with how often it occurs and example names."""

    token: str
    count: int  # names containing it
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"token": self.token, "count": self.count, "examples": list(self.examples)}


def known_words(vocab: Vocabulary, lexicon: Iterable[str] = ()) -> frozenset[str]:
    """Every single word the vocabulary or the catalogue lexicon gives a meaning to."""
    words: set[str] = set(lexicon) | set(STRUCTURAL_WORDS) | set(GENERIC_MODALITY_TOKENS)
    phrase_maps: list[Iterable[str]] = [
        vocab.phrases,
        vocab.phrases.values(),
        vocab.anatomy,
        vocab.modality_strong,
        vocab.modality_hints,
        vocab.techniques,
        vocab.interventional,
        vocab.interventional_neutral,
        vocab.actions,
        vocab.indications,
        vocab.context_words,
        vocab.unspecific_words,
        vocab.generic_words,
        vocab.plural_bilateral,
    ]
    phrase_maps.extend(vocab.context_groups.values())
    phrase_maps.extend(rule.words for rule in vocab.implied_anatomy)
    for phrases in vocab.modality_phrases.values():
        phrase_maps.extend([phrases, phrases.values()])
    for phrases in phrase_maps:
        for phrase in phrases:
            words.update(phrase.split())
    return frozenset(words)


def unknown_tokens(
    queries: Iterable[ExamQuery],
    lexicon: Iterable[str] = (),
    vocab: Vocabulary | None = None,
    top: int | None = None,
) -> tuple[list[UnknownToken], int]:
    """(unknown tokens by frequency, number of names read). Digits and one-letter tokens are skipped;
    administrative entries are skipped (they need no vocabulary)."""
    from nhs_lookup.components import non_clinical_reason

    vocab = vocab or default_vocabulary()
    lexicon = frozenset(lexicon)
    known = known_words(vocab, lexicon)
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    n = 0
    for q in queries:
        n += 1
        name = q.exam_name or ""
        if non_clinical_reason(name, vocab):
            continue
        mod_phrases = vocab.modality_phrases.get(
            first_modality(tokenize(strip_noise(name, vocab)), vocab, q.modality_code) or ""
        )
        seen = set()
        # With the lexicon, near-misses are typo-corrected as the parser does (they are understood).
        for tok in normalize_tokens(name, vocab, lexicon or None, mod_phrases):
            if len(tok) < 2 or not tok.isalpha() or tok in known or tok in seen:
                continue
            seen.add(tok)
            counts[tok] += 1
            ex = examples.setdefault(tok, [])
            if len(ex) < MAX_EXAMPLES and name not in ex:
                ex.append(name)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if top is not None:
        ranked = ranked[: max(top, 0)]
    return [UnknownToken(t, c, examples[t]) for t, c in ranked], n

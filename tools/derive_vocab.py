"""Derive abbreviation -> term pairs from systematic sources (not from failing names).

Sources (read from ../shared/nhs, never copied into the repository):

* the NHS catalogue: each NICIP-style short name is aligned with its SNOMED CT FSN, which usually
  spells out what the short name abbreviates ("Aneur" -> aneurysm, "CFV" -> common femoral vein);
* the RadLex Playbook: each SHORT_NAME is aligned with its LONG_NAME ("Pelv" -> pelvis).

A short-name token is an abbreviation candidate when it never occurs as a whole word in any FSN or
long name (so real words are never rewritten) and the aligned long text has either a word starting
with it (prefix abbreviation, >= 3 letters) or consecutive words whose initials spell it (acronym,
2-5 letters). Pairs seen with one expansion only are kept; conflicting ones are dropped. Tokens the
bundled vocabulary already knows are skipped.

Writes ``src/nhs_lookup/data/derived_abbreviations.yaml`` (committed vocabulary; the product runs
without ../shared). Usage: python tools/derive_vocab.py [--shared ../shared/nhs] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "nhs_lookup" / "data" / "derived_abbreviations.yaml"
_WORD = re.compile(r"[a-z][a-z0-9]*")
_TAG = re.compile(r"\s*\([^)]*\)\s*$")
# Function words never start an acronym expansion and are skipped inside one ("of", "and").
_STOP = frozenset({"of", "and", "the", "with", "without", "using", "for", "to", "by", "in", "on", "or", "a"})
# Laterality / contrast / view shorthand is handled by the hand-written vocabulary.
_SKIP = frozenset({"lt", "rt", "w", "wo", "b", "l", "r", "c", "iv"})
# Truncations that are ordinary words or stand for several radiology terms (tri-phase vs trimester,
# sup(erior) vs supine, met(astases) vs metallic, inf(erior) vs infusion, emboli the plural of embolus,
# chemo(therapy), thromb(osis/ectomy/olysis)...): a reviewer's list, kept out of the derived file.
AMBIGUOUS = frozenset(
    """tri gastro ortho per out neo exp inf med para add comp empty correct detect process place replace
    feed bleed monitor stand swim leak prospective retrospective dimension thromb thrombo chemo emboli
    endo ext temp vent rec sup press met be la hg lg pi cs hr map card int""".split()
)
# Words that never belong in an expansion (the laterality of the aligned row, numbers).
_BAD_EXPANSION = re.compile(r"\b(left|right|bilateral|both)\b|\d")


def _words(text: str) -> list[str]:
    return _WORD.findall(_TAG.sub("", text or "").lower())


def _acronyms(words: list[str], token: str) -> list[str]:
    """Consecutive content words (function words skipped inside) whose initials spell *token*."""
    out = []
    content = [w for w in words if w not in _STOP]
    n = len(token)
    for i in range(len(content) - n + 1):
        span = content[i : i + n]
        if "".join(w[0] for w in span) == token and all(len(w) > 1 for w in span):
            out.append(" ".join(span))
    return out


def _expansions(token: str, long_words: list[str]) -> set[str]:
    found: set[str] = set()
    if len(token) >= 3 and token.isalpha():
        found.update(w for w in long_words if w.startswith(token) and w != token and len(w) > len(token) + 1)
    if 2 <= len(token) <= 4 and token.isalpha():
        found.update(_acronyms(long_words, token))
    return {e for e in found if not _BAD_EXPANSION.search(e)}


def derive(pairs: list[tuple[str, str]], known: set[str]) -> dict[str, str]:
    """Abbreviation -> expansion from (short text, long text) pairs."""
    long_vocab: set[str] = set()
    for _, long in pairs:
        long_vocab.update(_words(long))
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for short, long in pairs:
        long_words = _words(long)
        for tok in set(_words(short)):
            if tok in long_vocab or tok in known or tok in _SKIP or tok in _STOP or tok in AMBIGUOUS:
                continue
            for exp in _expansions(tok, long_words):
                votes[tok][exp] += 1
    out: dict[str, str] = {}
    for tok, counter in votes.items():
        (best, n), *rest = counter.most_common()
        # One expansion only, or one that clearly dominates (twice the runner-up and seen twice);
        # two-letter acronyms are too ambiguous on a single sighting.
        if (not rest or (n >= 2 and n >= 2 * rest[0][1])) and (len(tok) > 2 or n >= 2):
            out[tok] = best
    return dict(sorted(out.items()))


def _hand_vocabulary():
    sys.path.insert(0, str(REPO / "src"))
    from nhs_lookup.vocab import DATA_DIR, load_vocabulary

    return load_vocabulary(DATA_DIR, derived=False)


def _known_tokens(vocab) -> set[str]:
    known = {k for k in vocab.phrases if " " not in k} | set(vocab.actions)
    known |= {k for k in vocab.modality_strong if " " not in k} | {
        k for k in vocab.modality_hints if " " not in k
    }
    return known


def _resolve(pairs: dict[str, str], vocab) -> dict[str, str]:
    """Expansions in the catalogue's canonical wording (US -> British spelling, synonyms)."""
    from nhs_lookup.normalize import rewrite_phrases

    return {k: " ".join(rewrite_phrases(v.split(), vocab)) for k, v in pairs.items()}


def render(nhs: dict[str, str], radlex: dict[str, str]) -> str:
    lines = [
        "# GENERATED by tools/derive_vocab.py from the NHS catalogue (short name vs SNOMED FSN) and the",
        "# RadLex Playbook (SHORT_NAME vs LONG_NAME). Do not edit by hand: change the tool and rerun it.",
        "# Hand-written abbreviations.yaml entries win over these.",
        "phrases:",
    ]
    merged = {**radlex, **nhs}
    for tok in sorted(merged):
        src = "nhs" if tok in nhs else "radlex"
        lines.append(f"  {tok}: {json.dumps(merged[tok])}  # {src}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "nhs"))
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed file is out of date")
    args = ap.parse_args()
    shared = Path(args.shared)
    catalogue = json.loads((shared / "NHS.json").read_text())
    radlex = json.loads((shared / "radlex_playbook_core.json").read_text())
    vocab = _hand_vocabulary()
    known = _known_tokens(vocab)
    nhs_pairs = [(r["primary_source_name"], r.get("snomed_fsn") or "") for r in catalogue]
    rl_pairs = [(r["SHORT_NAME"], r.get("LONG_NAME") or "") for r in radlex]
    # RadLex pairs are kept only when the expansion is wording the NHS catalogue uses.
    nhs_words = {w for short, long in nhs_pairs for w in _words(f"{short} {long}")}
    rl = {k: v for k, v in derive(rl_pairs, known).items() if set(v.split()) & nhs_words}
    text = render(_resolve(derive(nhs_pairs, known), vocab), _resolve(rl, vocab))
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        print("up to date" if current == text else f"{OUT} is out of date")
        return 0 if current == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10)) - 4} entries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

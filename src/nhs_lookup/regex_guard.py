"""Literal guards for regular expressions: a cheap substring test that rules a pattern out before it runs.

The parser applies ~45 vocabulary patterns (noise, symbol rewrites) to every name, and almost none of
them match a given name. For each pattern we derive, from its parsed source, a set of literal strings
at least one of which every match must contain; when none occurs in the text the pattern cannot match
and ``pattern.sub`` would return the text unchanged, so it is skipped. Patterns we cannot reason about
(case-insensitive flags, no mandatory literal) get no guard and always run.
"""

from __future__ import annotations

import re

try:  # CPython's own regex parser (``sre_parse`` before 3.11); without it no pattern gets a guard
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python implementations
    _c = _p = None

# A guard: None (always run), one string, or a tuple of strings (run when any occurs in the text).
Guard = str | tuple[str, ...] | None

_REPEATS = {getattr(_c, name, None) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")} - {None}


def _strength(need: frozenset[str]) -> tuple[int, int, int]:
    """Rank candidate guards: longest shortest string, then punctuation (rare in names), then fewest."""
    rare = all(not s.isalnum() for s in need)
    return (min(len(s) for s in need), int(rare), -len(need))


def _node(op: object, av: object) -> frozenset[str] | None:
    """Required strings of one parsed node (None: no guarantee)."""
    if op is _c.IN:
        if all(kind is _c.LITERAL for kind, _ in av):  # type: ignore[attr-defined]
            return frozenset(chr(v) for _, v in av)  # type: ignore[attr-defined]
        return None
    if op is _c.SUBPATTERN:
        _, add_flags, del_flags, sub = av  # type: ignore[misc]
        return None if add_flags or del_flags else _sequence(sub)
    if op is _c.BRANCH:
        out: set[str] = set()
        for alt in av[1]:  # type: ignore[index]
            need = _sequence(alt)
            if need is None:
                return None
            out |= need
        return frozenset(out)
    if op in _REPEATS:
        low, _, sub = av  # type: ignore[misc]
        return _sequence(sub) if low >= 1 else None
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _sequence(av)
    return None  # anchors, look-arounds, categories, "any", negated sets, back-references


def _sequence(items: object) -> frozenset[str] | None:
    """Strings one of which every match of a parsed sequence contains: the best of its mandatory parts
    (a run of consecutive literals is one string)."""
    cands: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            cands.append(frozenset({"".join(run)}))
            run = []
        need = _node(op, av)
        if need:
            cands.append(need)
    if run:
        cands.append(frozenset({"".join(run)}))
    return max(cands, key=_strength, default=None)


def literal_guard(pattern: re.Pattern[str]) -> Guard:
    """Strings one of which occurs in any text *pattern* can match (None: no such guarantee)."""
    if _p is None or not isinstance(pattern.pattern, str) or pattern.flags & re.IGNORECASE:
        return None
    try:
        need = _sequence(_p.parse(pattern.pattern, pattern.flags))
    except (re.error, TypeError, ValueError, AttributeError):
        return None
    if not need or "" in need:
        return None
    return next(iter(need)) if len(need) == 1 else tuple(sorted(need))


def may_match(guard: Guard, text: str) -> bool:
    """False only when a pattern with *guard* cannot match *text*."""
    if guard is None:
        return True
    if type(guard) is str:
        return guard in text
    for s in guard:  # a loop, not any(<generator>): the parser asks ~40 times per name
        if s in text:
            return True
    return False

"""The one exception that stops a whole inference run (usage problems, not bad files)."""

from __future__ import annotations


class InferenceError(Exception):
    """A usage problem that stops the whole run (bad data dir, conflicting earlier results, ...)."""


# --------------------------------------------------------------------------- discovery

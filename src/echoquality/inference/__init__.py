"""Batch inference over a folder of study/device sub-folders (``echoquality infer``).

Pipeline: ``discover`` lists the inputs; decoding + preprocessing run in worker processes
(``workers.Prefetcher``) while the main process runs batched forward passes (``runner.InferenceRun``),
so the model rarely waits on I/O. At most ``max_in_flight`` files are queued or decoded at a time,
which bounds memory; a worker that dies costs at most its file. ``num_workers=0`` runs everything inline.

Results are cached per folder (``resume``: ``<out>/<folder>/inference_state.json``) with the weights'
SHA-256 and a hash of the preprocessing config: a re-run scores only new or changed files; ``force``
re-scores, ``clean`` starts from an empty output folder. The package keeps torch out of its import so
that the spawned worker processes start fast and light.
"""

from echoquality.outputs import InferenceSummary

from .discover import InputFile, discover
from .errors import InferenceError
from .resume import STATE_FILE, STATE_FORMAT, preprocess_signature
from .runner import FLUSH_EVERY_S, InferenceRun, decode_cap, run_inference
from .workers import (
    KILL_HOOK_ENV,
    KILL_STATE_ENV,
    WORKER_DIED,
    Prefetcher,
    _Job,
    _Outcome,
    iter_preprocessed,
    preprocess_job,
)

__all__ = [
    "FLUSH_EVERY_S",
    "KILL_HOOK_ENV",
    "KILL_STATE_ENV",
    "STATE_FILE",
    "STATE_FORMAT",
    "WORKER_DIED",
    "InferenceError",
    "InferenceRun",
    "InferenceSummary",
    "InputFile",
    "Prefetcher",
    "_Job",
    "_Outcome",
    "decode_cap",
    "discover",
    "iter_preprocessed",
    "preprocess_job",
    "preprocess_signature",
    "run_inference",
]

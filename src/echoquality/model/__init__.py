"""The quality network: architectures, weights files, and scoring clips.

- ``networks``: ``build_model``, ``TinyR2Plus1D``, expected parameter shapes.
- ``state_dict``: reading, checking and loading weights files (``WeightsError``).
- ``predict``: device choice and ``score_batch``, the one forward pass + sigmoid.
- ``weights``: hashes, sidecar notes and the verified download (import it as a submodule).
"""

from echoquality.model.networks import ARCHITECTURES, TinyR2Plus1D, build_model, expected_shapes
from echoquality.model.predict import (
    batch_logits,
    prepare_for_inference,
    resolve_device,
    score_batch,
)
from echoquality.model.state_dict import (
    DEFAULT_WEIGHTS_PATH,
    REFERENCE_WEIGHTS_SHA256,
    REFERENCE_WEIGHTS_SIZE,
    WEIGHTS_ENV_VAR,
    WeightsError,
    architecture_of,
    check_state_dict,
    load_model,
    load_state_dict_checked,
    model_from_state_dict,
    resolve_weights_path,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_WEIGHTS_PATH",
    "REFERENCE_WEIGHTS_SHA256",
    "REFERENCE_WEIGHTS_SIZE",
    "WEIGHTS_ENV_VAR",
    "TinyR2Plus1D",
    "WeightsError",
    "architecture_of",
    "batch_logits",
    "build_model",
    "check_state_dict",
    "expected_shapes",
    "load_model",
    "load_state_dict_checked",
    "model_from_state_dict",
    "prepare_for_inference",
    "resolve_device",
    "resolve_weights_path",
    "score_batch",
]

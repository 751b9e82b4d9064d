"""Which layers train: building the network from --weights (or from scratch) and freezing the rest.

A layer name means that layer and everything after it ("layer4" -> layer4 + fc). Frozen layers
also keep their BatchNorm statistics. Training from scratch always trains every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echoquality.training.errors import TrainError

LAYER_ORDER = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")


def trainable_children(spec: tuple[str, ...] | list[str]) -> set[str]:
    """Child modules to train. A layer name means that layer and everything after it
    ("layer4" -> layer4 + fc); "all" trains everything; several names are united."""
    names: set[str] = set()
    for raw in spec:
        for name in str(raw).split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                return set(LAYER_ORDER)
            if name not in LAYER_ORDER:
                raise TrainError(
                    f"unknown trainable layer {name!r}; use one of: all, {', '.join(LAYER_ORDER)}"
                )
            names.update(LAYER_ORDER[LAYER_ORDER.index(name) :])
    if not names:
        raise TrainError("no trainable layers given")
    return names


def set_trainable(model: Any, children: set[str]) -> int:
    """Freeze every parameter outside *children*; returns the number of trainable parameters."""
    n = 0
    for name, module in model.named_children():
        on = name in children
        for p in module.parameters():
            p.requires_grad_(on)
            n += p.numel() if on else 0
    return n


def freeze_batchnorm_of_frozen(model: Any, children: set[str]) -> None:
    """Frozen layers keep their BatchNorm statistics (eval mode) while the rest trains."""
    for name, module in model.named_children():
        if name not in children:
            module.eval()


@dataclass
class Network:
    """The network to train and what of it trains."""

    model: Any
    architecture: str
    children: set[str]
    n_trainable: int
    n_total: int

    @property
    def trainable_names(self) -> str:
        return ",".join(sorted(self.children, key=LAYER_ORDER.index))


def build_network(architecture: str, weights: str | None, trainable: tuple[str, ...], say: Any) -> Network:
    """The network from *weights* (its own architecture wins over *architecture*) or from scratch."""
    from echoquality.model import architecture_of, build_model, load_state_dict_checked

    state = None
    if weights:
        state = load_state_dict_checked(Path(weights))
        file_arch = architecture_of(state)
        if file_arch != architecture:
            say(f"--weights hold a {file_arch} network: using architecture {file_arch} (not {architecture})")
            architecture = file_arch
    model = build_model(architecture)
    if state is not None:
        model.load_state_dict(state)
        children = trainable_children(trainable)
    else:
        children = set(LAYER_ORDER)  # from scratch: frozen random layers would be pointless
        if set(trainable_children(trainable)) != children:
            say("no --weights: training from scratch, so all layers are trained")
    n_trainable = set_trainable(model, children)
    n_total = sum(p.numel() for p in model.parameters())
    return Network(model, architecture, children, n_trainable, n_total)

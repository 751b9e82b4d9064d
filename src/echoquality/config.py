"""One typed configuration object for EchoQuality, loaded from YAML with defaults in code.

The preprocessing defaults reproduce the input the reference R(2+1)D quality model was
trained on (EchoPrime-style): masked sector, square centre crop, 10% zoom crop, 112x112
bicubic, BGR channel order, per-channel normalisation, 16 frames at stride 2 from frame 0,
short clips padded to 32 frames *after* normalisation.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radqc_common.config import build_dataclass, read_yaml_mapping

# Reference-model normalisation constants, BGR channel order, 0-255 scale.
REFERENCE_MEAN_BGR: tuple[float, float, float] = (29.110628, 28.076836, 29.096405)
REFERENCE_STD_BGR: tuple[float, float, float] = (47.989223, 46.456997, 47.20083)


@dataclass
class PreprocessConfig:
    """How a decoded cine becomes the model's (3, T, H, W) float tensor."""

    image_size: int = 112
    zoom_fraction: float = 0.1  # cropped from each side after the square centre crop
    mean_bgr: tuple[float, float, float] = REFERENCE_MEAN_BGR
    std_bgr: tuple[float, float, float] = REFERENCE_STD_BGR
    num_frames: int = 16  # frames fed to the network
    frame_stride: int = 2  # stride between sampled frames
    start_frame: int = 0
    pad_to_frames: int = 32  # short clips are padded (after normalisation) to this many frames
    mask_sector: bool = True
    # fps-aware sampling: when True, sample `num_frames` frames spanning the same time
    # window (num_frames * frame_stride / reference_fps seconds) whatever the acquisition rate.
    fps_aware: bool = False
    reference_fps: float = 30.0
    default_fps: float = 30.0  # used when a file carries no frame-rate tags


@dataclass
class InferenceConfig:
    """Batch inference over a folder of study/device sub-folders."""

    data_dir: str = "raw_data"
    output_dir: str = "results/inference_output"
    weights: str | None = None  # None: --weights, $ECHOQUALITY_WEIGHTS, weights/video_quality_model.pt
    threshold: float = 0.3
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 4
    num_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # decode/preprocess processes
    write_csv: bool = True
    write_plots: bool = True
    gradcam: bool = False  # save a Grad-CAM GIF per scored file (needs echoquality.evaluation.gradcam)
    max_in_flight: int = 0  # files queued/decoding at once (bounds memory); 0: 2*batch_size + 2*workers
    start_method: str = "spawn"  # multiprocessing start method of the decode workers
    # most memory decoding one file may take (MiB); larger files are skipped as invalid_dimensions.
    # 0: derived from the model's input (num_frames * frame_stride frames of 1024x1024 RGB, x4)
    max_decode_mb: float = 0.0
    # a file whose decode + preprocess runs longer than this (seconds) is stopped with its worker and
    # skipped as decode_error, so a hanging decoder cannot stall the run (needs num_workers >= 1); 0: none
    decode_timeout_s: float = 300.0


@dataclass
class AugmentConfig:
    """Training-time augmentation on uint8 frames, same transform for every frame of a clip."""

    brightness_p: float = 0.5
    brightness_range: tuple[float, float] = (0.9, 1.1)
    contrast_p: float = 0.5
    contrast_range: tuple[float, float] = (0.9, 1.1)
    rotation_p: float = 0.5
    rotation_degrees: float = 5.0
    translation_p: float = 0.5
    translation_fraction: float = 0.05
    zoom_p: float = 0.0
    zoom_range: tuple[float, float] = (0.95, 1.05)
    noise_p: float = 0.0
    noise_std: float = 5.0  # on the 0-255 scale
    temporal_crop_p: float = 0.0
    temporal_crop_range: tuple[float, float] = (0.9, 1.0)


@dataclass
class TrainConfig:
    """Fine-tuning the quality model."""

    annotations: str = "training_data/echo_annotations.csv"
    output_dir: str = "trained_models"
    cache_dir: str = "training_data/clip_cache"
    weights: str | None = None  # initial weights; None trains from scratch
    trainable_layers: tuple[str, ...] = ("layer4", "fc")  # names, or ("all",)
    architecture: str = "r2plus1d_18"  # or "tiny" (a small (2+1)D net for tests / CPU demos)
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    scheduler: str = "plateau"  # plateau | cosine
    early_stopping_patience: int = 5
    grad_clip: float = 1.0
    class_weighting: bool = True
    mixed_precision: bool = True  # only ever enabled on CUDA
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 42
    num_workers: int = 0
    mlflow: bool = True
    experiment_name: str = "EchoQuality_Training"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # added by the training module
    data_root: str | None = None  # base for video_path; None: the annotations CSV's folder
    use_cache: bool = True  # cache decoded uint8 clips under cache_dir
    augmentation: bool = True  # augment the training split
    device: str = "auto"  # auto | cpu | cuda
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI or sqlite:///./mlruns/mlflow.db
    min_delta: float = 0.0  # early stopping: the val loss must improve by more than this


@dataclass
class EchoConfig:
    """Top-level EchoQuality configuration."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any] | None) -> EchoConfig:
    return build_dataclass(EchoConfig, data, "config")


def load_config(path: str | Path | None = None) -> EchoConfig:
    """Load a YAML config; missing keys keep their defaults. ``None`` gives the defaults."""
    if path is None:
        return EchoConfig()
    return config_from_dict(read_yaml_mapping(path))

"""The UAM network: ventral VLM stream, dorsal dynamics expert, flow-matching action head.

Layer rule: this package imports only torch, numpy, safetensors and the standard library -- never
uam_ros.runtime, uam_ros.control or rclpy.

    config.py       UAMConfig (every size; validated)
    tokenizer.py    WordTokenizer
    layers.py       attention / transformer block shared by the three parts
    ventral.py      VentralVLM (ViT + prefix LM with a text head: VQA, captions, features for the dorsal)
    dorsal.py       DorsalExpert (visual-dynamics transformer; future-frame latents; frame decoder)
    action_head.py  FlowMatchingHead (fixed-step Euler sampler)
    uam.py          UAM, SingleStreamVLA baseline, build_model
    processor.py    UAMProcessor (images, tokens, normalisation in and out)
    checkpoint.py   safetensors checkpoints with config, stats and the robot's action layout
"""

from uam_ros.model.action_head import FlowMatchingHead
from uam_ros.model.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    ensure_layout,
    init_checkpoint,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from uam_ros.model.config import UAMConfig
from uam_ros.model.dorsal import DorsalExpert
from uam_ros.model.processor import UAMProcessor
from uam_ros.model.tokenizer import WordTokenizer
from uam_ros.model.uam import MODEL_KINDS, UAM, SingleStreamVLA, build_model
from uam_ros.model.ventral import VentralVLM

__all__ = [
    "MODEL_KINDS",
    "UAM",
    "CheckpointError",
    "DorsalExpert",
    "FlowMatchingHead",
    "LoadedCheckpoint",
    "SingleStreamVLA",
    "UAMConfig",
    "UAMProcessor",
    "VentralVLM",
    "WordTokenizer",
    "build_model",
    "ensure_layout",
    "init_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "sha256_file",
]

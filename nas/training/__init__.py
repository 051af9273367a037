"""Supernet training: samplers, in-place distillation, the resumable training loop."""

from nas.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nas.training.config import TrainConfig
from nas.training.data_parallel import train_data_parallel
from nas.training.distillation import alpha_divergence, distillation_loss, kl_distillation
from nas.training.horizon import steps_for_budget
from nas.training.replica import Replica
from nas.training.samplers import (
    SAMPLERS,
    ArchSampler,
    SampledArch,
    SamplerConfig,
    make_sampler,
)
from nas.training.trainer import TrainResult, lr_factor, train_supernet, validation_panel

__all__ = [
    "SAMPLERS", "ArchSampler", "CheckpointError", "Replica", "SampledArch", "SamplerConfig",
    "TrainConfig", "TrainResult", "alpha_divergence", "distillation_loss", "kl_distillation",
    "load_checkpoint", "lr_factor", "make_sampler", "save_checkpoint", "steps_for_budget",
    "train_data_parallel", "train_supernet", "validation_panel",
]

"""Synthetic degradation of HQ faces (and clips) into realistic LQ ones, for training and previews."""

from .synthetic import DegradationConfig, DegradationParams, degrade, degrade_clip, sample_clip_params, sample_params

__all__ = ["DegradationConfig", "DegradationParams", "degrade", "degrade_clip", "sample_clip_params", "sample_params"]

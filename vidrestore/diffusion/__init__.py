"""Diffusion maths: schedules, the DifFace-style sampler, and temporal warping. No networks here."""

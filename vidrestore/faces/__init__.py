"""Faces: detection, tracking over time, alignment to the canonical crop, and paste-back."""

"""vidrestore: face restoration for video with FLIPNET, keeping sound, timing and metadata."""

__version__ = "0.1.0"

"""``vidrestore batch``: many videos, resumable, in-process or on Ray."""

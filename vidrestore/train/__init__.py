"""Training: datasets of faces and clips, and the joint two-mode FLIPNET trainer."""

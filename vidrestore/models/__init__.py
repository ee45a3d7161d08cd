"""Networks (FLIPNET) and the model zoo. Diffusion maths lives in ``vidrestore.diffusion``."""

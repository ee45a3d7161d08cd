"""Check vidrestore's NIQE against BasicSR's implementation, which BasicSR reports matches the
authors' MATLAB release to 4 decimals (baboon.png: 5.7296 both).

BasicSR is not a dependency (it pulls torchvision); fetch its source once, nothing is installed:

    pip download basicsr==1.4.2 --no-deps --no-binary :all: -d /tmp/bsr && tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    python bench/validate_niqe.py /tmp/bsr/basicsr-1.4.2

Both implementations get the same grey image and the official pristine model that ships with
BasicSR's source, on scikit-image's sample photos, clean and degraded. Prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from vidrestore.eval import niqe as ours


def load_basicsr_niqe(src: Path):
    """Import BasicSR's metrics/niqe.py alone, with stand-ins for the package imports it does not use."""
    for name in ("basicsr", "basicsr.metrics", "basicsr.utils"):
        mod = types.ModuleType(name)
        mod.__path__ = []
        sys.modules[name] = mod
    registry = types.ModuleType("basicsr.utils.registry")
    registry.METRIC_REGISTRY = types.SimpleNamespace(register=lambda: (lambda f: f))
    sys.modules["basicsr.utils.registry"] = registry

    def load(name: str, rel: str):
        spec = importlib.util.spec_from_file_location(name, src / "basicsr" / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    sys.modules["basicsr.utils"].bgr2ycbcr = load("basicsr.utils.color_util", "utils/color_util.py").bgr2ycbcr
    load("basicsr.utils.matlab_functions", "utils/matlab_functions.py")
    load("basicsr.metrics.metric_util", "metrics/metric_util.py")
    return load("basicsr.metrics.niqe", "metrics/niqe.py")


def variants(img: np.ndarray) -> dict[str, np.ndarray]:
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 15, img.shape), 0, 255).astype(np.uint8)
    small = cv2.resize(img, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    return {"clean": img, "blur σ2": cv2.GaussianBlur(img, (0, 0), 2), "noise σ15": noisy,
            "×4 down-up": cv2.resize(small, img.shape[1::-1], interpolation=cv2.INTER_CUBIC)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("basicsr_src", type=Path, help="unpacked basicsr source folder (holds basicsr/metrics/niqe.py)")
    args = p.parse_args()
    reference = load_basicsr_niqe(args.basicsr_src)
    params = np.load(args.basicsr_src / "basicsr" / "metrics" / "niqe_pris_params.npz")
    official = (params["mu_pris_param"].ravel().astype(np.float64), params["cov_pris_param"].astype(np.float64))
    print("| image | variant | BasicSR (official model) | vidrestore (official model) | abs diff | vidrestore (default Video BLIINDS frame model) |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for name in ("astronaut", "coffee", "chelsea", "camera", "rocket"):
        img = getattr(data, name)()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img
        for label, im in variants(img).items():
            grey = ours.luminance(im)
            ref = reference.niqe(grey, *official, params["gaussian_window"])
            got = ours.niqe_score(grey, *official)
            worst = max(worst, abs(ref - got))
            print(f"| {name} | {label} | {ref:.4f} | {got:.4f} | {abs(ref - got):.1e} | {ours.niqe(im):.4f} |")
    print(f"\nlargest difference: {worst:.2e}")


if __name__ == "__main__":
    main()

"""How a track is sampled (a preset of ``configs/presets/``): :class:`SamplerConfig`, apart from
the sampler (:mod:`.sampler`), so that the command line reads and checks a preset before torch loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import check_minimums, check_shares
from ..errors import ConfigError

SCHEDULERS = ("ddim", "dpmsolver++")


@dataclass(frozen=True)
class SamplerConfig:
    start_step: int = 400  # N: the diffused LQ enters the reverse chain at t = N (of 1000)
    steps: int = 10  # K: denoising steps from N to 0
    scheduler: str = "ddim"  # ddim | dpmsolver++
    eta: float = 0.0  # DDIM stochasticity; > 0 uses the shared per-step noise
    boosthub_scale: float = 1.0  # phi
    warp_schedule: list[list[float]] = field(
        default_factory=lambda: [[0.0, 0.8], [0.3, 0.8], [0.45, 0.3], [0.6, 0.0], [0.85, 0.0], [1.0, 0.4]])
    reanchor_invalid: float = 0.3  # skip warping into a frame when more than this share of pixels fail the FB test
    seed: int = 12345

    def __post_init__(self) -> None:
        # checked as the preset is read: "steps: -3" in a preset failed deep in the first window's
        # sampling, after pass 1, with a traceback
        check_minimums(self, start_step=1, steps=1, eta=0)
        check_shares(self, "reanchor_invalid")
        if self.steps > self.start_step:
            raise ConfigError(f"steps: expected at most start_step ({self.start_step}): the chain from t = {self.start_step} "
                              f"has no more timesteps; got {self.steps}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler: expected one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        places = [point[0] for point in self.warp_schedule if len(point) == 2]
        if len(places) != len(self.warp_schedule) or not places or places != sorted(places) or not 0 <= places[0] <= places[-1] <= 1:
            raise ConfigError("warp_schedule: expected [fraction, weight] pairs, their fractions from 0 to 1 in order, "
                              f"got {self.warp_schedule}")

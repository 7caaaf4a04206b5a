"""KL coefficient controllers (Ziegler et al. 2019, https://arxiv.org/abs/1909.08593, sec. 2.2).

Fixed: ``beta`` never changes. Adaptive: after each step, with the measured KL to the
reference and a target KL,

    error = clip(KL / target - 1, -0.2, 0.2)
    beta <- beta * (1 + error * n / horizon)

so beta grows while the policy drifts further than the target and shrinks while it stays
closer; ``n`` is the number of sequences in the step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KLController:
    beta: float
    target: float = 0.0  # 0: fixed coefficient
    horizon: int = 10_000

    def update(self, kl: float, n: int) -> float:
        if self.target > 0 and self.beta > 0:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.beta *= 1.0 + error * n / self.horizon
        return self.beta

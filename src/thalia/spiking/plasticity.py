"""Synaptic plasticity rules, opt-in per projection (``Network.connect(..., plasticity=...)``).

Both rules keep per-synapse traces updated inside the engine's step loop (step 6 of
:mod:`thalia.spiking.engine`), at the source neuron's spike time (axonal delays do not enter the
timing) and with weights clipped to [w_min, w_max] nS.

* :class:`STDP` — pair-based STDP with all-to-all traces: a presynaptic trace x (+1 per pre spike,
  decay τ₊) and a postsynaptic trace y (+1 per post spike, decay τ₋). At a post spike w += A₊·x, at a
  pre spike w −= A₋·y. A single pair with Δt = t_post − t_pre changes w by A₊·e^{−Δt/τ₊} (Δt > 0) or
  −A₋·e^{Δt/τ₋} (Δt < 0), exactly at multiples of dt.
* :class:`BCM` — Bienenstock–Cooper–Munro with a sliding threshold: rate traces x (pre) and y (post)
  in Hz (+1000/τ per spike, decay τ), threshold θ (Hz) following y²/y₀ with time constant τ_θ, and
  dw/dt = η·x·y·(y − θ) integrated every step (η in nS per Hz³ per s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _positive(rule: str, **values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"Invalid value for {name!r} of {rule}: expected a finite number > 0, got {value!r}.")


@dataclass(frozen=True)
class STDP:
    """Pair-based STDP (amplitudes in nS)."""

    A_plus_nS: float = 0.05
    A_minus_nS: float = 0.06
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    w_min_nS: float = 0.0
    w_max_nS: float = math.inf

    def __post_init__(self) -> None:
        _positive("STDP", tau_plus_ms=self.tau_plus_ms, tau_minus_ms=self.tau_minus_ms)
        if self.A_plus_nS < 0 or self.A_minus_nS < 0 or not self.w_min_nS <= self.w_max_nS:
            raise ValueError("Invalid STDP amplitudes or bounds: expected A_plus, A_minus >= 0 and w_min <= w_max.")


@dataclass(frozen=True)
class BCM:
    """BCM with a sliding threshold (rates in Hz)."""

    eta: float = 1e-7
    tau_pre_ms: float = 50.0
    tau_post_ms: float = 50.0
    tau_theta_ms: float = 1000.0
    target_hz: float = 10.0
    w_min_nS: float = 0.0
    w_max_nS: float = math.inf

    def __post_init__(self) -> None:
        _positive(
            "BCM", tau_pre_ms=self.tau_pre_ms, tau_post_ms=self.tau_post_ms, tau_theta_ms=self.tau_theta_ms,
            target_hz=self.target_hz,
        )  # fmt: skip
        if self.eta < 0 or not self.w_min_nS <= self.w_max_nS:
            raise ValueError("Invalid BCM parameters: expected eta >= 0 and w_min <= w_max.")

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
* :class:`STDPBCM` — both on one synapse (the composite of the original thalia's cortex: STDP, then
  BCM on the result): Δw per step = the STDP change + the BCM change, one clip. The two rules share
  their traces, so the STDP time constants must equal the BCM rate-trace time constants
  (τ₊ = τ_pre, τ₋ = τ_post); the BCM rates are the STDP traces × 1000/τ.

In the engine every trace is unitless (+1 per spike); BCM reads it as a rate x·1000/τ (Hz), which is
the rate trace above.
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


@dataclass(frozen=True)
class STDPBCM:
    """STDP and BCM on the same synapses (Δw = Δw_STDP + Δw_BCM each step, clipped to the tighter of
    the two rules' bounds). The rules share traces: ``stdp.tau_plus_ms == bcm.tau_pre_ms`` and
    ``stdp.tau_minus_ms == bcm.tau_post_ms`` are required."""

    stdp: STDP = STDP()
    bcm: BCM = BCM(tau_pre_ms=20.0, tau_post_ms=20.0)

    def __post_init__(self) -> None:
        if not isinstance(self.stdp, STDP) or not isinstance(self.bcm, BCM):
            raise ValueError(
                f"Invalid STDPBCM: expected an STDP and a BCM rule, got {type(self.stdp).__name__} and "
                f"{type(self.bcm).__name__}."
            )
        pairs = (("tau_plus_ms", "tau_pre_ms"), ("tau_minus_ms", "tau_post_ms"))
        for a, b in pairs:
            if getattr(self.stdp, a) != getattr(self.bcm, b):
                raise ValueError(
                    f"Invalid STDPBCM: the rules share traces, so stdp.{a} must equal bcm.{b}; got "
                    f"{getattr(self.stdp, a)!r} and {getattr(self.bcm, b)!r}."
                )
        if max(self.stdp.w_min_nS, self.bcm.w_min_nS) > min(self.stdp.w_max_nS, self.bcm.w_max_nS):
            raise ValueError("Invalid STDPBCM: the two rules' weight bounds do not overlap.")

    @property
    def w_min_nS(self) -> float:
        return max(self.stdp.w_min_nS, self.bcm.w_min_nS)

    @property
    def w_max_nS(self) -> float:
        return min(self.stdp.w_max_nS, self.bcm.w_max_nS)

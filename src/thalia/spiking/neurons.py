"""Neuron models of the spiking engine, in physical units (mV, nS, pF, ms, pA).

:class:`LIF` — the conductance-based leaky integrate-and-fire neuron::

    C dV/dt = g_L (E_L − V) + Σ_r g_r·B_r(V)·(E_r − V) + g_w (E_w − V) + I_bias
    dg_r/dt = −g_r / τ_r          (r = ampa, gaba_a, nmda, gaba_b; g_r += w when a spike arrives)
    dg_w/dt = −g_w / τ_w          (spike-triggered adaptation: g_w += b at each own spike)

plus, when g_T > 0, the T-type Ca²⁺ current of the integrate-and-fire-or-burst (IFB) model (Smith
et al. 2000, J Neurophysiol 83:588): a conductance g_T·m∞(V)·h with reversal E_T, m∞ = 1 above V_h
and 0 below, and an inactivation gate h that decays (τ_h⁻) above V_h and recovers (τ_h⁺) below it.
Hyperpolarisation de-inactivates h, so release from it gives a low-threshold Ca²⁺ spike crowned by a
burst; at depolarised potentials h ≈ 0 and the cell fires tonically. This is

with the Mg²⁺ block B(V) = 1 / (1 + [Mg²⁺]/3.57 mM · exp(−0.062 V/mV)) on NMDA (Jahr & Stevens
1990) and B = 1 for the other receptors. After a spike V is held at V_reset for t_ref (the
conductances keep decaying). Membrane noise is an Ornstein–Uhlenbeck term of σ mV: V += σ·√(1 −
e^{−2dt/τ_m})·ξ per step, so the stationary SD of the passive membrane is exactly σ at any dt.

Integration (``exponential_euler``, per step of dt): the conductances are taken at the start of the
step and V is advanced by the exact solution of the then linear equation,
V ← V∞ + (V − V∞)·exp(−dt·g_tot/C); the conductances decay exactly, g ← g·exp(−dt/τ).

Current-based synapses (``synapse="current"``, e.g. the iaf_psc_exp neuron of the Potjans–Diesmann
microcircuit): each receptor carries a current I_r (pA) instead of a conductance,

    C dV/dt = g_L (E_L − V) + Σ_r s_r·I_r + g_w (E_w − V) + I_bias,      dI_r/dt = −I_r / τ_r,

with I_r += w (pA) per spike and the sign s_r = +1 for ``ampa`` and ``nmda``, −1 for ``gaba_a`` and
``gaba_b`` (weights are magnitudes, ≥ 0); E_rev and the Mg²⁺ block do not apply. The engine integrates
the synaptic current exactly over each step (the propagator of the linear system, as NEST's
iaf_psc_exp does): without adaptation and T-current the membrane update is exact at any dt.
Such neurons coexist with conductance-based ones in one network (the mode is per population).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

RECEPTORS = ("ampa", "gaba_a", "nmda", "gaba_b")
#: Sign of each receptor's current onto current-based neurons (``synapse="current"``).
CURRENT_SIGN = {"ampa": 1.0, "gaba_a": -1.0, "nmda": 1.0, "gaba_b": -1.0}
SYNAPSE_MODES = ("conductance", "current")
#: Default (time constant ms, reversal potential mV) of each receptor.
DEFAULT_RECEPTORS = {"ampa": (5.0, 0.0), "gaba_a": (10.0, -80.0), "nmda": (100.0, 0.0), "gaba_b": (200.0, -95.0)}
MG_BLOCK_MM = 3.57
MG_BLOCK_SLOPE_PER_MV = 0.062


def _check(name: str, value: float, *, positive: bool = False, nonnegative: bool = False) -> None:
    ok = np.isfinite(value) and (value > 0 if positive else value >= 0 if nonnegative else True)
    if not ok:
        bound = " > 0" if positive else " >= 0" if nonnegative else ""
        raise ValueError(f"Invalid value for {name!r}: expected a finite number{bound}, got {value!r}.")


@dataclass(frozen=True)
class LIF:
    """Conductance-based LIF neuron (see the module docstring for the equations).

    Attributes
    ----------
    C_pF, g_leak_nS, E_leak_mV : float
        Capacitance, leak conductance and leak reversal (τ_m = C / g_L).
    V_th_mV, V_reset_mV, t_ref_ms : float
        Threshold, reset and refractory period.
    I_bias_pA : float
        Constant input current.
    tau_ms, E_rev_mV : dict
        Per receptor (``ampa``, ``gaba_a``, ``nmda``, ``gaba_b``): decay time constant and reversal.
    mg_mM : float
        Extracellular Mg²⁺ of the NMDA block.
    adapt_b_nS, adapt_tau_ms, adapt_E_mV : float
        Spike-triggered adaptation: increment, decay time constant, reversal.
    noise_mV : float
        Membrane noise σ (stationary SD of the passive membrane).
    V_init_mV, V_init_sd_mV : float
        Initial membrane potentials ~ N(V_init, V_init_sd).
    g_T_nS, E_T_mV, V_h_mV, tau_h_minus_ms, tau_h_plus_ms, h_init : float
        T-type Ca²⁺ current of the IFB model (off when g_T = 0).
    synapse : {"conductance", "current"}
        Synapse mode: conductances (nS, with reversal potentials) or currents (pA; weights of the
        projections onto this neuron are then in pA and ``tau_ms`` are the current decay times).
    """

    C_pF: float = 200.0
    g_leak_nS: float = 10.0
    E_leak_mV: float = -60.0
    V_th_mV: float = -50.0
    V_reset_mV: float = -60.0
    t_ref_ms: float = 5.0
    I_bias_pA: float = 0.0
    tau_ms: dict = field(default_factory=lambda: {r: v[0] for r, v in DEFAULT_RECEPTORS.items()})
    E_rev_mV: dict = field(default_factory=lambda: {r: v[1] for r, v in DEFAULT_RECEPTORS.items()})
    mg_mM: float = 1.0
    adapt_b_nS: float = 0.0
    adapt_tau_ms: float = 100.0
    adapt_E_mV: float = -80.0
    noise_mV: float = 0.0
    V_init_mV: float | None = None
    V_init_sd_mV: float = 0.0
    g_T_nS: float = 0.0
    E_T_mV: float = 120.0
    V_h_mV: float = -60.0
    tau_h_minus_ms: float = 20.0
    tau_h_plus_ms: float = 100.0
    h_init: float = 0.0
    synapse: str = "conductance"

    def __post_init__(self) -> None:
        if self.synapse not in SYNAPSE_MODES:
            raise ValueError(
                f"Invalid value for 'synapse': allowed {', '.join(map(repr, SYNAPSE_MODES))}, got {self.synapse!r}."
            )
        for name in ("C_pF", "g_leak_nS", "adapt_tau_ms", "tau_h_minus_ms", "tau_h_plus_ms"):
            _check(name, getattr(self, name), positive=True)
        for name in ("t_ref_ms", "mg_mM", "adapt_b_nS", "noise_mV", "V_init_sd_mV", "g_T_nS", "h_init"):
            _check(name, getattr(self, name), nonnegative=True)
        for name in ("E_leak_mV", "V_th_mV", "V_reset_mV", "I_bias_pA", "adapt_E_mV", "E_T_mV", "V_h_mV"):
            _check(name, getattr(self, name))
        for what in ("tau_ms", "E_rev_mV"):
            given = dict(getattr(self, what))
            unknown = set(given) - set(RECEPTORS)
            if unknown:
                raise ValueError(
                    f"Invalid value for {what!r}: unknown receptor(s) {sorted(unknown)}; allowed {list(RECEPTORS)}."
                )
            merged = {r: given.get(r, DEFAULT_RECEPTORS[r][0 if what == "tau_ms" else 1]) for r in RECEPTORS}
            for r, v in merged.items():
                _check(f"{what}[{r!r}]", v, positive=what == "tau_ms")
            object.__setattr__(self, what, merged)
        if self.V_reset_mV >= self.V_th_mV:
            raise ValueError(
                f"Invalid value for 'V_reset_mV': expected below V_th_mV = {self.V_th_mV}, got {self.V_reset_mV}."
            )

    @property
    def tau_m_ms(self) -> float:
        return self.C_pF / self.g_leak_nS

    @property
    def current_based(self) -> bool:
        return self.synapse == "current"

    @property
    def initial_mean_mV(self) -> float:
        return self.E_leak_mV if self.V_init_mV is None else self.V_init_mV

    def replace(self, **changes) -> LIF:
        """A copy with some parameters changed (names checked)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"Unknown LIF parameter(s) {sorted(unknown)}; allowed {sorted(known)}.")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return LIF(**{**values, **changes})


#: Smith et al. (2000) thalamocortical-cell IFB parameters per cm² (C 2 µF, g_L 0.035 mS, g_T 0.07 mS,
#: E_L −65, E_T 120, V_θ −35, V_reset −50, V_h −60 mV, τ_h⁻ 20, τ_h⁺ 100 ms), here for 1e-4 cm².
IFB_AREA_CM2 = 1e-4


def ifb(**changes) -> LIF:
    """The integrate-and-fire-or-burst neuron of Smith et al. (2000) for a membrane of 1e-4 cm²
    (C = 200 pF, g_L = 3.5 nS, g_T = 7 nS); keyword arguments change any LIF parameter."""
    area_uF_to_pF = 1e6 * IFB_AREA_CM2  # 1 µF/cm² · area -> pF
    area_mS_to_nS = 1e6 * IFB_AREA_CM2  # 1 mS/cm² · area -> nS
    base = LIF(
        C_pF=2.0 * area_uF_to_pF, g_leak_nS=0.035 * area_mS_to_nS, E_leak_mV=-65.0, V_th_mV=-35.0,
        V_reset_mV=-50.0, t_ref_ms=0.0, g_T_nS=0.07 * area_mS_to_nS, E_T_mV=120.0, V_h_mV=-60.0,
        tau_h_minus_ms=20.0, tau_h_plus_ms=100.0,
    )  # fmt: skip
    return base.replace(**changes) if changes else base


def mg_block(V_mV, mg_mM: float):
    """Jahr–Stevens NMDA Mg²⁺ block B(V) (NumPy or torch)."""
    import torch

    exp = torch.exp if torch.is_tensor(V_mV) else np.exp
    return 1.0 / (1.0 + mg_mM / MG_BLOCK_MM * exp(-MG_BLOCK_SLOPE_PER_MV * V_mV))

"""SPM's conductance-based canonical microcircuit with NMDA receptors (CMM_NMDA).

The four-population model of Moran et al. (2011, Front Comput Neurosci 5:8; 2013) as specified for
DCM: spiny stellate (1), superficial pyramidal (2), inhibitory interneurons (3) and deep pyramidal
(4) cells, each with a membrane potential V and AMPA, GABA-A and NMDA conductances (Morris–Lecar
style). Per source and population:

    C dV/dt = g_L(V_L − V) + g_E(V_E − V) + g_I(V_I − V) + g_N(V_N − V)·mg(V)
    dg_E/dt = κ_E (E − g_E),  dg_I/dt = κ_I (I − g_I),  dg_N/dt = κ_N (E_N − g_N)

with V_L, V_E, V_I, V_N = −70, 60, −90, 10 mV, g_L = 1, C = [128 128 256 32]·exp(CV)/1000,
κ = exp(−T)·1000/[4 16 100] s⁻¹ and the magnesium block mg(V) = 1.50265/(1 + 0.33·e^{−0.06V}).
Firing is the population's mean rate m = Φ((V − V_R)/σ), V_R = −40 mV, σ² = 32·exp(S), with Φ the
normal CDF in J. D. Williams' (1946) approximation ½(1 + sign(z)·√(1 − e^{−2z²/π})) (as SPM). The
afferents are

    E = 2·((G∘G_E) m + B + S_A a) + u,   E_N = 2·((G∘G_E) m + B + S_N a_N) + u,   I = (G∘G_I) m

with G = exp(H) (H(2,2) shifted by G), background B = 0.8·exp(E), extrinsic forward/backward
afference a = A m (from populations 2 and 4; reciprocal AMPA connections divided by 9), S_A routing
forward input to 1, backward to 2 and (×2) 3, and the endogenous input u entering population 1.

The state is SPM's (ns, 4, 4) array [source, population, V/gE/gI/gN] flattened column-major. **SPM
linearises this model at its initial state** (V = −50 mV, every conductance 1/8), which is *not* a
fixed point (max|f| ≈ 475): ``spm_dcm_neural_x`` searches a steady state for ``spm_fx_cmm`` only.
thalia reproduces that by default (``expansion="spm"``); ``expansion="fixed_point"`` linearises at the
true fixed point instead (damped Newton). At SPM's expansion point the background drive E only adds a
constant to the flow and so does not change the spectrum (as in SPM); it acts with the fixed point.

Delays: 2·exp(D₁) ms between populations of one source, 16·exp(D₂) ms between sources, folded in
with SPM's first-order operator (I + D∘J)⁻¹. The LFP of source i is L_i·Σ J_k x(i, ·).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from thalia._validation import check_option, check_positive_int
from thalia.mass._constants import const
from thalia.mass.cmc import lfp_specs, spectral_specs
from thalia.mass.spm_base import SPMModel, extrinsic_masks, reciprocal_damping
from thalia.mass.spm_table import spm_spec
from thalia.params import ParamSpace

Tensor = torch.Tensor

V_LEAK, V_AMPA, V_GABA, V_NMDA, V_THRESHOLD = -70.0, 60.0, -90.0, 10.0, -40.0
G_LEAK = 1.0
CAPACITANCE = np.array([128.0, 128.0, 256.0, 32.0]) / 1000.0
TAU_MS = np.array([4.0, 16.0, 100.0])  # AMPA, GABA-A, NMDA
RATES_PER_S = 1000.0 / TAU_MS
FIRING_VARIANCE = 32.0
BACKGROUND = 0.8
#: Intrinsic excitatory (AMPA and NMDA) and inhibitory topologies [target, source].
G_EXCITATORY = np.array([[0, 0, 0, 0], [4, 0, 0, 0], [4, 0, 0, 2], [0, 4, 0, 0]], dtype=float)
G_INHIBITORY = np.array([[8, 0, 2, 0], [0, 8, 2, 0], [0, 0, 32, 0], [0, 0, 8, 128]], dtype=float)
#: Extrinsic routing of forward / backward afference onto the four populations.
S_EXTRINSIC = np.array([[1, 0], [0, 1], [0, 2], [0, 0]], dtype=float) / 8
H_PRIOR = np.array([[1, 0, 1, 0], [1, 1, 1, 0], [1, 0, 1, 1], [0, 1, 1, 1]], dtype=float) / 32
DELAYS_MS = (2.0, 16.0)
DELAYS_S = np.array(DELAYS_MS) / 1000.0
INITIAL_V, INITIAL_G = -50.0, 0.125
EXPANSIONS = ("spm", "fixed_point")
STATE_NAMES = ("V", "gE", "gI", "gN")


def williams_cdf(z: Tensor) -> Tensor:
    """Normal CDF by Williams' approximation ½(1 + sign(z)√(1 − e^{−2z²/π})), smooth through z = 0."""
    z2 = z * z
    safe = torch.where(z2 > 0, z2, torch.ones_like(z2))
    ratio = torch.where(z2 > 0, -torch.expm1(-(2 / math.pi) * safe) / safe, torch.full_like(z2, 2 / math.pi))
    return 0.5 + 0.5 * z * torch.sqrt(ratio)


def williams_pdf(z: Tensor) -> Tensor:
    """Derivative of :func:`williams_cdf`: (1/π)·e^{−2z²/π}/√r with r = (1 − e^{−2z²/π})/z²."""
    c = 2 / math.pi
    z2 = z * z
    safe = torch.where(z2 > 0, z2, torch.ones_like(z2))
    ratio = torch.where(z2 > 0, -torch.expm1(-c * safe) / safe, torch.full_like(z2, c))
    return 0.5 * c * torch.exp(-c * z2) / torch.sqrt(ratio)


def mg_switch(v: Tensor) -> Tensor:
    """SPM's magnesium block of the NMDA conductance."""
    return 1.50265 / (1.0 + 0.33 * torch.exp(-0.06 * v))


def cmm_nmda_space(ns: int, forward: np.ndarray, backward: np.ndarray) -> ParamSpace:
    """CMM_NMDA priors for ``ns`` sources (``spm_cmm_NMDA_priors`` + LFP + spectral priors)."""
    a = np.stack([forward, backward], axis=-1).astype(bool)
    j_mean = np.zeros((1, 16))
    j_mean[0, 1] = 1.0
    j_var = np.zeros((1, 16))
    j_var[0, [2, 3]] = 1 / 32
    specs = [
        spm_spec("S", (1, 1), 0.0, 1 / 64, "firing dispersion: variance 32·exp(S) mV²"),
        spm_spec("T", (ns, 3), 0.0, 1 / 64, "AMPA, GABA-A, NMDA time constants [4 16 100]·exp(T) ms"),
        spm_spec("G", (ns, 1), 0.0, 0.0, "added to H(2,2): superficial pyramidal self-inhibition"),
        spm_spec("CV", (1, 4), 0.0, 1 / 16, "capacitances [128 128 256 32]·exp(CV)/1000"),
        spm_spec("E", (1, 1), 0.0, 1 / 64, "background drive 0.8·exp(E)"),
        spm_spec("A", (ns, ns, 2), np.where(a, 0.0, -32.0), a / 8, "extrinsic AMPA gains exp(A){k}", cell=True),
        spm_spec("AN", (ns, ns, 2), np.where(a, 0.0, -32.0), a / 8, "extrinsic NMDA gains exp(AN){k}", cell=True),
        spm_spec("C", (ns, 1), 0.0, 1 / 8, "exogenous input gain (inert in the CSD: endogenous input)"),
        spm_spec("H", (4, 4, ns), 0.0, np.repeat(H_PRIOR[:, :, None], ns, axis=2), "intrinsic gains exp(H)"),
        spm_spec("R", (1, 2), 0.0, 1 / 16, "input onset and dispersion (inert in the CSD)"),
        spm_spec("D", (1, 2), 0.0, 1 / 64, "delays: 2·exp(D1) ms within, 16·exp(D2) ms between sources"),
        *lfp_specs(ns, j_mean, j_var),
        *spectral_specs(ns, ns),
    ]
    return ParamSpace(tuple(specs))


class CMMNMDA(SPMModel):
    """SPM's CMM_NMDA model (``spm_fx_cmm_NMDA``) behind thalia's model interface.

    Parameters
    ----------
    n_sources : int
        Number of sources (one LFP channel each).
    forward, backward : (ns, ns) array_like of bool, optional
        Extrinsic connections [target, source] (AMPA and NMDA). Default: none.
    expansion : {"spm", "fixed_point"}
        Where the spectral model is linearised: SPM's initial state (V = −50 mV, conductances 1/8;
        not a fixed point, as in SPM), or the true fixed point.
    """

    name = "cmm_nmda"
    states_per_source = 16
    delay_method = "first_order"
    spm_delay_method = "first_order"
    natural_scales = {
        "T": lambda i: ("log", TAU_MS[i[1]], "ms"),
        "L": lambda i: ("linear", 1.0, ""),
    }

    def __init__(self, n_sources: int = 1, forward: Any = None, backward: Any = None, expansion: str = "spm"):
        self.n_sources = check_positive_int("n_sources", n_sources)
        self.expansion = check_option("expansion", expansion, EXPANSIONS)
        ns = self.n_sources
        masks = extrinsic_masks(ns, forward=forward, backward=backward)
        self.space = cmm_nmda_space(ns, masks["forward"], masks["backward"])
        self.n_states = 16 * ns
        self.n_inputs = ns
        self.channels = tuple(f"LFP{i + 1}" for i in range(ns))

    def state_names(self) -> list[str]:
        return [f"{s}{k + 1}[{i}]" for s in STATE_NAMES for k in range(4) for i in range(self.n_sources)]

    # -- dynamics --------------------------------------------------------------------------------
    def flow(self, x: Tensor, u: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """dx/dt of ``spm_fx_cmm_NMDA`` (pure; differentiable in x, u and every parameter)."""
        ns = self.n_sources
        like = dict(dtype=x.dtype, device=x.device)
        X = x.reshape(4, 4, ns)  # [state, population, source]
        v, g_e, g_i, g_n = X[0], X[1], X[2], X[3]
        m = williams_cdf(self._standardised(v, p)[0])
        gain = self._intrinsic(p, like)  # (ns, 4, 4)
        excite = torch.einsum("ipq,qi->pi", gain * const(G_EXCITATORY, x), m)
        inhibit = torch.einsum("ipq,qi->pi", gain * const(G_INHIBITORY, x), m)
        background = BACKGROUND * torch.exp(p["E"][0, 0])
        routing = const(S_EXTRINSIC, x)
        ampa_in = routing @ self._afference(p["A"], m, damp=True)  # (4, ns)
        nmda_in = routing @ self._afference(p["AN"], m, damp=False)
        drive = torch.zeros(4, ns, **like).index_copy(0, torch.tensor([0], device=x.device), u[None])
        e = 2 * (excite + background + ampa_in) + drive
        e_n = 2 * (excite + background + nmda_in) + drive
        cap = const(CAPACITANCE, x)[:, None] * torch.exp(p["CV"][0])[:, None]
        dv = (G_LEAK * (V_LEAK - v) + g_e * (V_AMPA - v) + g_i * (V_GABA - v) + g_n * (V_NMDA - v) * mg_switch(v)) / cap
        rate = const(RATES_PER_S, x)[:, None] * torch.exp(-p["T"].T)  # (3, ns)
        dg = torch.stack([(e - g_e) * rate[0], (inhibit - g_i) * rate[1], (e_n - g_n) * rate[2]])
        return torch.cat([dv[None], dg]).reshape(-1)

    def _standardised(self, v: Tensor, p: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """z = (V − V_R)/σ (4, ns) and σ: the firing rate is m = Φ(z), dm/dV = Φ'(z)/σ."""
        sigma = torch.sqrt(FIRING_VARIANCE * torch.exp(p["S"][0, 0]))
        return (v - V_THRESHOLD) / sigma, sigma

    def jacobian(self, x: Tensor, p: Mapping[str, Tensor], u: Tensor | None = None) -> Tensor:
        """Exact ∂f/∂x in closed form ((16ns, 16ns); equal to autodiff of :meth:`flow`, and faster)."""
        ns = self.n_sources
        like = dict(dtype=x.dtype, device=x.device)
        X = x.reshape(4, 4, ns)
        v, g_e, g_i, g_n = X[0], X[1], X[2], X[3]
        z, sigma = self._standardised(v, p)
        dm = williams_pdf(z) / sigma
        cap = const(CAPACITANCE, x)[:, None] * torch.exp(p["CV"][0])[:, None]
        mg = mg_switch(v)
        dmg = 0.06 * 0.33 * torch.exp(-0.06 * v) * mg * mg / 1.50265
        dv_dv = (-G_LEAK - g_e - g_i - g_n * mg + g_n * (V_NMDA - v) * dmg) / cap
        membrane = torch.stack([dv_dv, (V_AMPA - v) / cap, (V_GABA - v) / cap, (V_NMDA - v) * mg / cap])  # (4,4,ns)
        rate = const(RATES_PER_S, x)[:, None] * torch.exp(-p["T"].T)  # (3, ns)
        eye4 = torch.eye(4, **like)
        gain = self._intrinsic(p, like)  # (ns, 4, 4)
        routing = const(S_EXTRINSIC, x)

        def diagonal(values: Tensor) -> Tensor:
            """(4, ns) → (4, 4, ns, ns), nonzero on population = population, source = source."""
            return torch.diag_embed(values)[:, None] * eye4[:, :, None, None]

        def coupling(topology: np.ndarray, extrinsic: Tensor | None, scale: float) -> Tensor:
            """∂(afferent[p, i]) / ∂V[q, j] as (4, 4, ns, ns)."""
            local = scale * (gain * const(topology, x)).permute(1, 2, 0)  # (4, 4, ns)
            w = torch.diag_embed(local)
            if extrinsic is not None:
                w = w + scale * extrinsic
            return w * dm[None, :, None, :]

        ampa, nmda = (self._extrinsic_sensitivity(p[n], damp, routing) for n, damp in (("A", True), ("AN", False)))
        afferents = (
            coupling(G_EXCITATORY, ampa, 2.0),
            coupling(G_INHIBITORY, None, 1.0),
            coupling(G_EXCITATORY, nmda, 2.0),
        )
        rows = [torch.stack([diagonal(membrane[col]) for col in range(4)], dim=1)]  # [p, col state, q, i, j]
        for k, w in enumerate(afferents):
            decay = -diagonal(rate[k].expand(4, ns))
            zero = torch.zeros_like(decay)
            cols = [
                w * rate[k][None, None, :, None] if col == 0 else decay if col == k + 1 else zero for col in range(4)
            ]
            rows.append(torch.stack(cols, dim=1))
        blocks = torch.stack(rows)  # [row state, p, col state, q, i, j]
        return blocks.permute(0, 1, 4, 2, 3, 5).reshape(16 * ns, 16 * ns)

    def _extrinsic_sensitivity(self, a: Tensor, damp: bool, routing: Tensor) -> Tensor:
        """∂(S_A·[A₁m₂; A₂m₄])[p, i] / ∂m[q, j] as (4, 4, ns, ns)."""
        gains = [torch.exp(a[:, :, k]) for k in range(2)]
        if damp:
            gains = [reciprocal_damping(g, 8.0) for g in gains]
        forward, backward = (routing[:, k, None, None] * gains[k][None] for k in range(2))  # (4, ns, ns)
        zero = torch.zeros_like(forward)
        return torch.stack([zero, forward, zero, backward], dim=1)

    def input_matrix(self, x: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """∂f/∂u (16ns, ns): the endogenous input drives population 1's AMPA and NMDA conductances."""
        ns = self.n_sources
        rate = const(RATES_PER_S, x)[:, None] * torch.exp(-p["T"].T)
        first = torch.eye(4, 1, dtype=x.dtype, device=x.device)[:, :, None, None]  # population 1 only
        ampa, nmda = (first * torch.diag_embed(rate[k])[None, None] for k in (0, 2))  # (4, 1, ns, ns)
        zero = torch.zeros_like(ampa)
        b = torch.cat([zero, ampa, zero, nmda], dim=1)  # (4 pops, 4 states, ns, ns)
        return b.permute(1, 0, 2, 3).reshape(16 * ns, ns)

    def _intrinsic(self, p: Mapping[str, Tensor], like: dict) -> Tensor:
        h = p["H"].reshape(4, 4, self.n_sources).permute(2, 0, 1)  # (ns, 4, 4)
        pick = torch.zeros(4, 4, **like)
        pick[1, 1] = 1.0  # G shifts H(2,2)
        return torch.exp(h + p["G"][:, 0, None, None] * pick)

    def _afference(self, a: Tensor, m: Tensor, damp: bool) -> Tensor:
        """Extrinsic forward (from population 2) and backward (from 4) afference: (2, ns)."""
        gains = [torch.exp(a[:, :, k]) for k in range(2)]
        if damp:
            gains = [reciprocal_damping(g, 8.0) for g in gains]
        return torch.stack([gains[0] @ m[1], gains[1] @ m[3]])

    def initial_state(self, device: torch.device | str | None = None) -> Tensor:
        """SPM's ``M.x``: V = −50 mV, every conductance 1/8."""
        ns = self.n_sources
        x = torch.full((4, 4, ns), INITIAL_G, dtype=torch.float64, device=device)
        x[0] = INITIAL_V
        return x.reshape(-1)

    @property
    def batchable(self) -> bool:
        return self.expansion == "spm"

    def expansion_point(self, p: Mapping[str, Any]) -> Tensor:
        """SPM's initial state (``expansion="spm"``) or the fixed point (``"fixed_point"``)."""
        if self.expansion == "spm":
            return self.initial_state(p["L"].device)
        return self.fixed_point(p).x

    # -- delays and observation ------------------------------------------------------------------
    def delays(self, p: Mapping[str, Any]) -> Tensor:
        """(16ns, 16ns) delays in seconds: 2·exp(D₁) ms between populations, 16·exp(D₂) ms between sources."""
        t = self._tensors(p, validate=False)
        d = const(DELAYS_S, t["D"]) * torch.exp(t["D"][0])
        ns = self.n_sources
        like = dict(dtype=d.dtype, device=d.device)
        eye_s = torch.eye(ns, **like)
        ones4 = torch.ones(4, 4, **like)
        same_pop = torch.kron(ones4, torch.kron(torch.eye(4, **like), eye_s))
        same_source = torch.kron(ones4, torch.kron(ones4, eye_s))
        return d[1] * (1 - same_source) + d[0] * (same_source - same_pop)

    def observation(self, p: Mapping[str, Any]) -> Tensor:
        """(ns, 16ns) LFP matrix: channel i reads L_i·Σ_k J_k x(i, k)."""
        t = self._tensors(p, validate=False)
        return self._lfp(t["L"][0], t["J"][0])

    def fixed_point_start(self) -> Tensor:
        return self.initial_state()

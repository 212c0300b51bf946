"""The TCM flow f(x, u, θ) and its exact structured Jacobian (tcm_model.md Part B §2).

Pure functions of float64 tensors. The state of ``ns`` sources is stored as in the original
(``spm_vec`` / Fortran order of an (ns, 8, 7) array), which is the C order of an (7, 8, ns) array:
flat index = s + ns·(p + 8·k). Inside, a state is viewed as (7, m) with m = 8·ns membrane rows
ordered p·ns + s.

Every conductance relaxes first-order towards a target, g_X' = K_X (target_X(V) − g_X), and the
targets of AMPA, GABA-A, NMDA, GABA-B and M are *linear* in the firing vector m(V):
target_X = W_X · m(V) + b_X. :func:`coupling` builds the W_X once per parameter set (intrinsic
topology, extrinsic A/AN routing, background), and the flow, the fixed point and the Jacobian all
use it — the equations are written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

from thalia.mass import tcm_constants as K
from thalia.mass._constants import const

Tensor = torch.Tensor


class TCMConfig(NamedTuple):
    """Static (non-parameter) options of a TCM instance."""

    n_sources: int = 1
    smooth: bool = True  # smooth firing (tcm_py); False = MATLAB hard switch
    n_inputs: int = 1  # 1: u → RT and RC AMPA; 2: u1 → SP, u2 → RC (per source)


class Coupling(NamedTuple):
    """Per-parameter-set operators of the flow; m = 8·ns membrane rows (p·ns + s)."""

    W: Tensor  # (5, m, m) coupling of firing onto AMPA, GABA-A, NMDA, GABA-B, M targets
    b: Tensor  # (5, m) constant part of those targets (background, optional drives)
    h_gain: Tensor  # (m,) H-channel target gain (nonzero for TP and RC)
    rate: Tensor  # (6, m) relaxation rates K_X (s^-1)
    capacitance: Tensor  # (m,)
    g_leak: Tensor  # ()
    v_threshold: Tensor  # (m,) VR (mV)
    mg_slope: Tensor  # () Mg-block slope (1/mV)
    u_gain: Tensor  # (m, n_u) exogenous input into the AMPA target, n_u = n_inputs·ns


_SOURCE_ONE_HOT = np.eye(8)[list(K.EXTRINSIC_SOURCES)]  # afferent type j -> carrying population
_RATE_SCALE = 1000.0 / K.TAU_MS
_NMDA_ROW = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])[:, None]  # selects the Mg-blocked conductance


def _per_source(pop_values: Tensor, ns: int) -> Tensor:
    """(…, 8) per-population values → (…, 8·ns) membrane rows (p·ns + s)."""
    return pop_values if ns == 1 else pop_values.repeat_interleave(ns, dim=-1)


def _intrinsic(gain_log: Tensor, topology, ns: int) -> Tensor:
    """exp(gain) ∘ G placed block-diagonally over sources: (8, 8, ns) → (m, m)."""
    if ns == 1:
        return torch.exp(gain_log[:, :, 0]) * const(topology, gain_log)
    hg = torch.exp(gain_log) * const(topology, gain_log)[:, :, None]  # [p, q, s]
    blocks = torch.diag_embed(hg)  # [p, q, s, s']
    return blocks.permute(0, 2, 1, 3).reshape(8 * ns, 8 * ns)


def _extrinsic(gain_log: Tensor, ns: int, damp: bool) -> Tensor:
    """Routing of the 5 extrinsic afferents: Σ_j SA[p, j] A_j[s, s'] on source population src_j."""
    gains = torch.exp(gain_log)  # (5, ns, ns) [j, target source, source source]
    if damp:
        strong = gains > K.RECIPROCAL_THRESHOLD
        gains = torch.where(strong & strong.transpose(1, 2), gains / 9.0, gains)
    routing = const(K.EXTRINSIC_ROUTING, gain_log)  # (8, 5)
    source_pop = const(_SOURCE_ONE_HOT, gain_log)  # (5, 8)
    full = torch.einsum("pj,jq,jsr->psqr", routing, source_pop, gains)
    return full.reshape(8 * ns, 8 * ns)


def _topology_scale(p: Mapping[str, Tensor], index: int) -> Tensor | float:
    if "global" in p:
        return torch.exp(p["global"][index])
    return 1.0


def coupling(p: Mapping[str, Tensor], cfg: TCMConfig) -> Coupling:
    """Build the flow's operators from log-scale parameters ``p`` (see :mod:`thalia.mass.tcm`)."""
    ns = cfg.n_sources
    H = p["H"]
    ex_gain = K.EXCITATORY_TARGET_GAIN
    background = _per_source(K.BACKGROUND * torch.exp(p["E"]), ns)
    w_ampa = _topology_scale(p, 0) * _intrinsic(H, K.G_EA, ns) + _extrinsic(p["A"], ns, damp=True)
    w_nmda = _topology_scale(p, 1) * _intrinsic(p["Hn"], K.G_EN, ns) + _extrinsic(p["AN"], ns, damp=False)
    w_gaba_a = _topology_scale(p, 2) * _intrinsic(H, K.G_IA, ns)
    w_gaba_b = _topology_scale(p, 3) * _intrinsic(p["Gb"] if "Gb" in p else H, K.G_IB, ns)
    w_m = torch.diag(_per_source(K.M_GAIN * torch.exp(p["Mh"]), ns))
    W = torch.stack([ex_gain * w_ampa, w_gaba_a, ex_gain * w_nmda, w_gaba_b, w_m])
    zero = torch.zeros_like(background)
    b_ampa, b_nmda = ex_gain * background, ex_gain * background
    if "endo" in p:  # optional extra SP AMPA drive 2 exp(endo)
        sp = torch.zeros(8, dtype=H.dtype, device=H.device)
        sp[1] = 1.0
        b_ampa = b_ampa + _per_source(sp, ns) * (ex_gain * torch.exp(p["endo"]))
    if "thi" in p:  # optional extra relay drive exp(thi) on AMPA and NMDA
        rc = torch.zeros(8, dtype=H.dtype, device=H.device)
        rc[7] = 1.0
        b_ampa = b_ampa + _per_source(rc, ns) * torch.exp(p["thi"])
        b_nmda = b_nmda + _per_source(rc, ns) * torch.exp(p["thi"])
    b = torch.stack([b_ampa, zero, b_nmda, zero, zero])
    h_gain = _per_source(K.H_GAIN * torch.exp(p["Hh"]) * const(K.H_CHANNEL_POPULATIONS, H), ns)
    rate = torch.exp(-p["T"]).T * const(_RATE_SCALE, H)[:, None]  # (6, ns)
    rate = rate.repeat(1, 8)  # (6, m): row p·ns + s takes source s
    if "T1" in p:  # optional additive AMPA / NMDA rate offsets (linear, s^-1)
        t1 = p["T1"]
        rate = rate + torch.cat([t1[:1], 0 * t1[:1], t1[1:2], 0 * t1[:1].expand(3)])[:, None]
    capacitance = _per_source(torch.exp(p["CV"]) * const(K.CAPACITANCE, H), ns)
    s_log = torch.clamp(p["S"], -5.0, 5.0) if cfg.smooth else p["S"]
    v_threshold = _per_source(K.V_THRESHOLD_BASE_MV + torch.exp(s_log), ns)
    u_gain = _input_gain(p["C"], cfg)
    return Coupling(
        W, b, h_gain, rate, capacitance, torch.exp(p["leak"]), v_threshold,
        K.MG_SLOPE * torch.exp(p["scale_NMDA"]), u_gain,
    )  # fmt: skip


def _input_gain(c_log: Tensor, cfg: TCMConfig) -> Tensor:
    """(m, n_inputs·ns): exogenous input j of source s enters AMPA targets with gain exp(C_s)."""
    ns = cfg.n_sources
    routing = torch.zeros(8, cfg.n_inputs, dtype=c_log.dtype, device=c_log.device)
    if cfg.n_inputs == 1:
        routing[[6, 7], 0] = 1.0  # u → RT and RC
    else:
        routing[1, 0] = 1.0  # u1 → SP
        routing[7, 1] = 1.0  # u2 → RC
    gain = torch.einsum("pj,st->psjt", routing, torch.diag(torch.exp(c_log)))
    return gain.reshape(8 * ns, cfg.n_inputs * ns)


# ---------------------------------------------------------------------------------------------
# Elementwise nonlinearities, each returning (value, derivative)
# ---------------------------------------------------------------------------------------------
def _clamp_d(z: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """clamp(z, lo, hi) and its derivative (1 inside [lo, hi], 0 outside)."""
    clamped = torch.clamp(z, lo, hi)
    return clamped, (clamped == z).to(z.dtype)


def firing(v: Tensor, v_threshold: Tensor, smooth: bool) -> tuple[Tensor, Tensor]:
    """Population firing m(V) in [0, 1] and dm/dV (V already clipped in smooth mode)."""
    slope = K.FIRING_SLOPE
    if smooth:
        z1, d1 = _clamp_d(slope * (v - v_threshold), -60.0, 60.0)
        z2, d2 = _clamp_d(v - K.V_CUTOFF_MV, -60.0, 60.0)
        s1, upper = torch.sigmoid(z1), torch.sigmoid(-z2)  # upper = 1 − σ(z2)
        rate = s1 * upper
        d_rate = rate * (slope * d1 * (1.0 - s1) - d2 * (1.0 - upper))
        return rate, d_rate
    s1 = torch.sigmoid(slope * (v - v_threshold))
    below = v < v_threshold
    rate = torch.where(below, s1, torch.where(v < K.V_CUTOFF_MV, torch.ones_like(v), torch.zeros_like(v)))
    d_rate = torch.where(below, slope * s1 * (1.0 - s1), torch.zeros_like(v))
    return rate, d_rate


def h_gate(v: Tensor) -> tuple[Tensor, Tensor]:
    """Hyperpolarisation-activated gate h(V) = 1 − σ(2/3 (V − V_H)) and dh/dV."""
    s = torch.sigmoid(K.FIRING_SLOPE * (v - K.H_GATE_V_MV))
    return 1.0 - s, -K.FIRING_SLOPE * s * (1.0 - s)


def mg_block(v: Tensor, mg_slope: Tensor) -> tuple[Tensor, Tensor]:
    """NMDA Mg²⁺ block B(V) = 1 / (1 + 0.2 exp(−k V)) and dB/dV = k B (1 − B)."""
    block = 1.0 / (1.0 + K.MG_A * torch.exp(-mg_slope * v))
    return block, mg_slope * block * (1.0 - block)


def clip_voltage(v: Tensor, smooth: bool) -> tuple[Tensor, Tensor]:
    """tcm_py clips V to [−120, 60] mV in the smooth variant; the hard variant does not clip."""
    if smooth:
        return _clamp_d(v, -120.0, 60.0)
    return v, torch.ones_like(v)


# ---------------------------------------------------------------------------------------------
# Flow
# ---------------------------------------------------------------------------------------------
def targets(v_hat: Tensor, c: Coupling, smooth: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Conductance targets (6, m) at membrane potential V̂, with dm/dV̂ and dh/dV̂ parts.

    Returns ``(target, d_rate, h_value, dh)``; the exogenous input is added by the caller.
    """
    rate, d_rate = firing(v_hat, c.v_threshold, smooth)
    h, dh = h_gate(v_hat)
    linear = c.W @ rate + c.b  # (5, m)
    target = torch.cat([linear, (c.h_gain * h)[None]], dim=0)
    return target, d_rate, h, dh


def _drive_terms(v_hat: Tensor, c: Coupling) -> tuple[Tensor, Tensor, Tensor]:
    """Driving forces V_X − V (6, m), factors (1, or the Mg block B(V) for NMDA) and dB/dV."""
    block, d_block = mg_block(v_hat, c.mg_slope)
    drive = const(K.V_REV_MV, v_hat)[:, None] - v_hat[None]
    factors = 1.0 + const(_NMDA_ROW, v_hat) * (block[None] - 1.0)
    return drive, factors, d_block


def membrane(v_hat: Tensor, g: Tensor, c: Coupling) -> Tensor:
    """dV/dt (mV/s) = [GL (V_L − V) + Σ_X g_X (V_X − V) B_X(V)] / C."""
    drive, factors, _ = _drive_terms(v_hat, c)
    return (c.g_leak * (K.V_LEAK_MV - v_hat) + (g * factors * drive).sum(0)) / c.capacitance


def flow_from_coupling(x: Tensor, u: Tensor, c: Coupling, cfg: TCMConfig) -> Tensor:
    """f(x, u) for a prepared :class:`Coupling`; ``x`` flat (56·ns,), ``u`` flat (n_inputs·ns,)."""
    m = 8 * cfg.n_sources
    states = x.reshape(7, m)
    v_hat, _ = clip_voltage(states[0], cfg.smooth)
    g = states[1:]
    target, _, _, _ = targets(v_hat, c, cfg.smooth)
    exogenous = torch.cat([(c.u_gain @ u.to(c.u_gain))[None], torch.zeros_like(target[1:])])  # AMPA only
    dg = c.rate * (target + exogenous - g)
    dv = membrane(v_hat, g, c)
    return torch.cat([dv, dg.reshape(-1)])


def flow(x: Tensor, u: Tensor, p: Mapping[str, Tensor], cfg: TCMConfig) -> Tensor:
    """The TCM flow dx/dt = f(x, u, θ) (tcm_model.md Part B §2). Pure; differentiable in x, u, θ."""
    return flow_from_coupling(x, u, coupling(p, cfg), cfg)


# ---------------------------------------------------------------------------------------------
# Exact Jacobian in block form
# ---------------------------------------------------------------------------------------------
class JacobianBlocks(NamedTuple):
    """∂f/∂x in block form: V rows/cols (m) and conductance rows/cols (6·m, diagonal block).

    A = [[diag(a11), [diag(a12[X])]_X], [A21 stacked over X, diag(a22)]].
    """

    a11: Tensor  # (m,)   ∂V'/∂V
    a12: Tensor  # (6, m) ∂V'/∂g_X (own population only)
    a21: Tensor  # (6, m, m) ∂g_X'/∂V
    a22: Tensor  # (6, m) ∂g_X'/∂g_X = −K_X

    def dense(self) -> Tensor:
        """Assemble the full (56·ns)² matrix in the original state order."""
        m = self.a11.shape[-1]
        top = torch.cat([torch.diag(self.a11), *[torch.diag(r) for r in self.a12]], dim=1)
        bottom = torch.cat([self.a21.reshape(6 * m, m), torch.diag(self.a22.reshape(-1))], dim=1)
        return torch.cat([top, bottom], dim=0)


def _membrane_partials(
    g: Tensor, drive: Tensor, factors: Tensor, d_block: Tensor, dv_clip: Tensor, c: Coupling
) -> tuple[Tensor, Tensor]:
    """∂V'/∂V (m,) and ∂V'/∂g_X (6, m)."""
    d_v = -c.g_leak - (g * factors).sum(0) + g[2] * drive[2] * d_block
    return d_v * dv_clip / c.capacitance, drive * factors / c.capacitance


def _conductance_rows(c: Coupling, slope: Tensor, h_slope: Tensor) -> Tensor:
    """∂g_X'/∂V (6, m, m) = K_X ∂target_X/∂V: W_X diag(m'(V)) for X < 5, diag(gain·h'(V)) for H."""
    linear = c.W * slope[None, None, :]
    return c.rate[:, :, None] * torch.cat([linear, torch.diag(c.h_gain * h_slope)[None]], dim=0)


def jacobian_blocks(x: Tensor, c: Coupling, cfg: TCMConfig) -> JacobianBlocks:
    """Exact ∂f/∂x (independent of u: the input enters the targets linearly)."""
    m = 8 * cfg.n_sources
    states = x.reshape(7, m)
    v_hat, dv_clip = clip_voltage(states[0], cfg.smooth)
    _, d_rate = firing(v_hat, c.v_threshold, cfg.smooth)
    _, dh = h_gate(v_hat)
    a11, a12 = _membrane_partials(states[1:], *_drive_terms(v_hat, c), dv_clip, c)
    return JacobianBlocks(a11, a12, _conductance_rows(c, d_rate * dv_clip, dh * dv_clip), -c.rate)


class _AtTargets(NamedTuple):
    """The flow's pieces at V with every conductance at its target g*(V)."""

    g_star: Tensor  # (6, m)
    residual: Tensor  # (m,) V'(V, g*(V))
    a11: Tensor  # (m,) ∂V'/∂V
    a12: Tensor  # (6, m) ∂V'/∂g_X
    slope: Tensor  # (m,) dm/dV (through the voltage clip)
    h_slope: Tensor  # (m,) dh/dV (through the voltage clip)


def _at_targets(v: Tensor, c: Coupling, cfg: TCMConfig) -> _AtTargets:
    v_hat, dv_clip = clip_voltage(v, cfg.smooth)
    g_star, d_rate, _, dh = targets(v_hat, c, cfg.smooth)
    drive, factors, d_block = _drive_terms(v_hat, c)
    residual = (c.g_leak * (K.V_LEAK_MV - v_hat) + (g_star * factors * drive).sum(0)) / c.capacitance
    a11, a12 = _membrane_partials(g_star, drive, factors, d_block, dv_clip, c)
    return _AtTargets(g_star, residual, a11, a12, d_rate * dv_clip, dh * dv_clip)


def reduced_residual(v: Tensor, c: Coupling, cfg: TCMConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Fixed-point problem in V alone: conductances at their targets g*(V).

    Returns ``(F, dF/dV, g*)`` with F(V) = V'(V, g*(V)) (m,), its exact Jacobian (m, m) and g* (6, m).
    Zeros of F are exactly the fixed points of the full flow (at u = 0).
    """
    at = _at_targets(v, c, cfg)
    # dF/dV = ∂V'/∂V + Σ_X ∂V'/∂g_X · ∂g*_X/∂V, with ∂g*_X/∂V = W_X diag(m') (X < 5), diag(h' gain) (H)
    through_rates = (at.a12[:5, :, None] * c.W).sum(0) * at.slope[None, :]
    jac = torch.diag(at.a11 + at.a12[5] * c.h_gain * at.h_slope) + through_rates
    return at.residual, jac, at.g_star


def linearization(v: Tensor, c: Coupling, cfg: TCMConfig) -> tuple[Tensor, JacobianBlocks, Tensor]:
    """State, Jacobian blocks and membrane residual at V with every conductance at its target.

    At a fixed point v* this is the whole linearisation in one pass: ``(x*, ∂f/∂x, V'(x*))`` — the
    conductance rows of f vanish exactly, so max|V'| is the residual of the full flow.
    """
    at = _at_targets(v, c, cfg)
    blocks = JacobianBlocks(at.a11, at.a12, _conductance_rows(c, at.slope, at.h_slope), -c.rate)
    return torch.cat([v, at.g_star.reshape(-1)]), blocks, at.residual

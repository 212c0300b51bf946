"""The conductance-based LIF of :mod:`thalia.spiking.neurons` against analytic and ODE references.

References (independent of the engine's code):

* constant conductances — the linear ODE C dV/dt = Σ g_k (E_k − V) + I has the closed form
  V(t) = V∞ + (V0 − V∞)·e^{−t·Σg/C}; exponential Euler is exact for it (tolerance 1e-9 mV: rounding);
* a decaying conductance — ``scipy.integrate.solve_ivp`` (DOP853, rtol 1e-10, atol 1e-12);
* the LIF interspike interval T = t_ref + τ ln((V∞ − V_reset)/(V∞ − V_th));
* the NMDA steady state — the root (``scipy.optimize.brentq``) of g_L(E_L − V) + g·B(V)(E − V) + I
  with the Jahr & Stevens (1990, J Neurosci 10:3178) block B(V) = 1/(1 + [Mg]/3.57 mM·e^{−0.062 V});
* adaptation — the ISIs of a frozen adaptation conductance n·b after n spikes, and the self-consistent
  steady-state ISI of a decaying one (solve_ivp + brentq);
* membrane noise — the stationary SD σ of the Ornstein–Uhlenbeck membrane.

Step conventions used below (the engine's module docstring): ``voltage[:, k]`` is V after step k, i.e.
at t = (k + 1)·dt; a synapse of delay d delivers a spike of step s to the conductance of step s + d;
after the spike step V is held for round(t_ref/dt) steps. A one-neuron *driver* with a huge bias
current and t_ref = 1e7 ms spikes once, at step 0, so its projections deliver one spike each at
step delay/dt — a conductance kick at a chosen time that both backends support.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from thalia.spiking import LIF, Network, OneToOne, simulate

pytestmark = pytest.mark.reference


BACKENDS = ["torch", "numba"]  # numba is a dependency: both backends are always tested
EXACT_MV = 1e-9  # the scheme is exact for constant conductances: only rounding remains
DT = 0.1
#: A conductance time constant (ms) so long that g is constant in float64: exp(−dt/τ) rounds to
#: 1 − 1.1e-16, so g drifts by < 1e-12 over 1e4 steps. (τ = 1e9 ms would drift by 1e-6 relative over
#: 1e4 steps, ~1e-6 mV in V: above EXACT_MV.)
FROZEN_TAU_MS = 1e15
DRIVER = LIF(I_bias_pA=1e6, t_ref_ms=1e7)  # spikes at step 0, then never again within a run
CELL = LIF()  # C 200 pF, g_L 10 nS (τ_m 20 ms), E_L −60 mV, V_th −50, V_reset −60, t_ref 5 ms


def _kicked(
    target: LIF, kicks, duration_ms: float, dt: float, backend: str, integrator: str = "exponential_euler"
) -> np.ndarray:
    """V after each step of one ``target`` neuron that receives one spike per (receptor, nS, delay ms)."""
    net = Network()
    net.add_population("driver", 1, DRIVER)
    net.add_population("cell", 1, target)
    for k, (receptor, weight, delay) in enumerate(kicks):
        net.connect("driver", "cell", OneToOne(), weight_nS=weight, receptor=receptor, delay_ms=delay, name=f"k{k}")
    result = simulate(net, duration_ms, dt_ms=dt, backend=backend, record_v={"cell": [0]}, integrator=integrator)
    assert len(result.spikes("driver")[0]) == 1
    return result.voltage["cell"][:, 0]


def _relaxation(V0: float, V_inf: float, rate_per_ms: float, t_ms: np.ndarray) -> np.ndarray:
    return V_inf + (V0 - V_inf) * np.exp(-rate_per_ms * t_ms)


# --- constant conductances: exact --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_passive_membrane_with_bias_current_is_exact(backend):
    cell = CELL.replace(I_bias_pA=50.0, V_init_mV=-70.0)  # V∞ = E_L + I/g_L = −55 mV < V_th
    net = Network()
    net.add_population("cell", 1, cell)
    result = simulate(net, 200.0, dt_ms=DT, backend=backend, record_v={"cell": [0]})
    t = DT * np.arange(1, len(result.voltage["cell"]) + 1)
    expected = _relaxation(-70.0, -60.0 + 50.0 / 10.0, 10.0 / 200.0, t)
    assert np.abs(result.voltage["cell"][:, 0] - expected).max() < EXACT_MV
    assert result.voltage["cell"][-1, 0] == pytest.approx(-55.0, abs=1e-3)  # 4 τ_m later


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("receptor", "g_nS", "E_mV"), [("ampa", 10.0, 0.0), ("gaba_a", 5.0, -80.0)])
def test_constant_conductance_relaxes_exactly(backend, receptor, g_nS, E_mV):
    target = CELL.replace(V_th_mV=20.0, tau_ms={receptor: FROZEN_TAU_MS})  # V_th above every reversal
    v = _kicked(target, [(receptor, g_nS, DT)], 200.0, DT, backend)  # g on from step 1 on
    V_inf = (10.0 * -60.0 + g_nS * E_mV) / (10.0 + g_nS)  # −30 mV (AMPA), −66.67 mV (GABA-A)
    expected = _relaxation(-60.0, V_inf, (10.0 + g_nS) / 200.0, DT * np.arange(len(v)))
    assert v[0] == -60.0
    assert np.abs(v - expected).max() < EXACT_MV


# --- one exponentially decaying conductance: first order in dt -------------------------------------
PSP_W_NS, PSP_TAU_MS, PSP_DELAY_MS, PSP_MS = 6.0, 5.0, 1.0, 60.0  # w_e of the COBA benchmark


def _psp_ode(weight_nS: float, t_ms: np.ndarray) -> np.ndarray:
    """High-accuracy V(t) for C dV/dt = g_L(E_L − V) + w·e^{−(t−t0)/τ}(E − V), V(t0) = E_L."""

    def rhs(t, V):
        return (10.0 * (-60.0 - V) + weight_nS * np.exp(-(t - PSP_DELAY_MS) / PSP_TAU_MS) * (0.0 - V)) / 200.0

    sol = solve_ivp(rhs, (PSP_DELAY_MS, PSP_MS), [-60.0], method="DOP853", rtol=1e-10, atol=1e-12, dense_output=True)
    return np.where(t_ms <= PSP_DELAY_MS, -60.0, sol.sol(np.maximum(t_ms, PSP_DELAY_MS))[0])


def _psp_errors(dt: float, backend: str) -> tuple[float, float]:
    """Max |engine − ODE| for the true weight w and for the step-averaged weight κ·w (see below)."""
    v = _kicked(CELL.replace(V_th_mV=20.0), [("ampa", PSP_W_NS, PSP_DELAY_MS)], PSP_MS, dt, backend)
    t = dt * np.arange(1, len(v) + 1)
    kappa = dt / (PSP_TAU_MS * (1.0 - math.exp(-dt / PSP_TAU_MS)))
    return np.abs(v - _psp_ode(PSP_W_NS, t)).max(), np.abs(v - _psp_ode(kappa * PSP_W_NS, t)).max()


@pytest.mark.parametrize("backend", BACKENDS)
def test_decaying_conductance_error_is_the_frozen_conductance_charge_excess(backend):
    """The engine holds g at its start-of-step value over each step, which delivers κ = dt/(τ(1 − e^{−dt/τ}))
    ≈ 1 + dt/(2τ) times the true synaptic charge: a first-order error of ~(dt/2τ)·PSP.

    Measured for a 6 nS AMPA kick (PSP 5.4 mV): 0.0506 mV at dt = 0.1 ms, 0.00505 mV at dt = 0.01 ms
    (ratio 10.03). This is 50× the 1e-3 mV the brief asked for at dt = 0.1 ms, and it is exactly the
    charge excess: against the ODE with the weight κ·w the engine is within 4.5e-5 mV (4.5e-7 at
    dt = 0.01, second order).
    """
    err_coarse, err_coarse_kappa = _psp_errors(0.1, backend)
    err_fine, err_fine_kappa = _psp_errors(0.01, backend)
    t = 0.1 * np.arange(1, int(PSP_MS / 0.1) + 1)
    kappa = 0.1 / (PSP_TAU_MS * (1.0 - math.exp(-0.1 / PSP_TAU_MS)))
    charge_excess = np.abs(_psp_ode(kappa * PSP_W_NS, t) - _psp_ode(PSP_W_NS, t)).max()
    assert err_coarse == pytest.approx(charge_excess, abs=1e-4)  # 0.0506 mV
    assert 9.0 < err_coarse / err_fine < 11.0  # first order
    assert err_coarse_kappa < 1e-4
    assert err_coarse_kappa / err_fine_kappa > 50.0  # second order once the charge is right


# --- the averaged integrator: exact charge, second order -------------------------------------------
KICK_MS = 300.0


def _kick_ode(receptor: str, weight_nS: float, mg_mM: float, t_ms: np.ndarray) -> np.ndarray:
    """DOP853 reference for one kick of ``weight_nS`` on ``receptor`` (default τ, E) at t0 = 1 ms."""
    tau, E = {"ampa": (5.0, 0.0), "nmda": (100.0, 0.0), "gaba_b": (200.0, -95.0)}[receptor]

    def rhs(t, V):
        block = _jahr_stevens(V, mg_mM) if receptor == "nmda" else 1.0
        return (10.0 * (-60.0 - V) + weight_nS * np.exp(-(t - PSP_DELAY_MS) / tau) * block * (E - V)) / 200.0

    sol = solve_ivp(rhs, (PSP_DELAY_MS, t_ms[-1]), [-60.0], method="DOP853", rtol=1e-12, atol=1e-12, dense_output=True)
    return np.where(t_ms <= PSP_DELAY_MS, -60.0, sol.sol(np.maximum(t_ms, PSP_DELAY_MS))[0])


def _averaged_error(receptor: str, weight_nS: float, dt: float, backend: str, mg_mM: float = 1.0) -> float:
    duration = PSP_MS if receptor == "ampa" else KICK_MS
    cell = CELL.replace(V_th_mV=20.0, mg_mM=mg_mM)
    v = _kicked(cell, [(receptor, weight_nS, PSP_DELAY_MS)], duration, dt, backend, integrator="averaged")
    return np.abs(v - _kick_ode(receptor, weight_nS, mg_mM, dt * np.arange(1, len(v) + 1))).max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("receptor", "weight_nS", "mg_mM", "measured_mV"),
    [("ampa", PSP_W_NS, 1.0, 4.46e-5), ("gaba_b", 10.0, 1.0, 3.3e-6), ("nmda", 20.0, 0.0, 1.51e-5)],
)
def test_averaged_integrator_is_second_order(backend, receptor, weight_nS, mg_mM, measured_mV):
    """``integrator="averaged"`` holds each conductance at its exact mean over the step,
    g·τ/dt·(1 − e^{−dt/τ}), so it delivers the true charge; what remains is second order in dt.

    Measured max |engine − ODE| at dt = 0.1 ms: 4.46e-5 mV for the 6 nS AMPA PSP of the first-order
    test above (5.35 mV peak; exponential Euler: 0.0506 mV), 3.3e-6 mV for a 10 nS GABA-B kick (15.8 mV;
    exponential Euler 2.4e-3), 1.51e-5 mV for a 20 nS NMDA kick without Mg²⁺ (exponential Euler 9.5e-3);
    each error divides by 4.00 when dt halves.
    """
    coarse = _averaged_error(receptor, weight_nS, 0.1, backend, mg_mM)
    fine = _averaged_error(receptor, weight_nS, 0.05, backend, mg_mM)
    assert coarse <= 1e-3
    assert coarse == pytest.approx(measured_mV, rel=0.05)
    assert coarse / fine == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_averaged_integrator_is_first_order_through_the_mg_block(backend):
    """With Mg²⁺ the NMDA term keeps the block B(V) of the start of the step, a first-order lag:
    a 20 nS NMDA kick (8.3 mV peak) is 6.3e-3 mV off at dt = 0.1 ms (exponential Euler: 4.4e-3 mV,
    where the charge excess partly cancels the lag), halving with dt. (A block at the step's midpoint,
    from a predictor step, would make it second order: 1.6e-5 mV in a prototype.)"""
    coarse = _averaged_error("nmda", 20.0, 0.1, backend)
    fine = _averaged_error("nmda", 20.0, 0.05, backend)
    assert coarse == pytest.approx(6.3e-3, rel=0.05)
    assert coarse / fine == pytest.approx(2.0, abs=0.05)


# --- LIF firing rate -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("I_pA", [210.0, 300.0])
def test_constant_current_rate_matches_analytic_isi(backend, I_pA):
    cell = CELL.replace(I_bias_pA=I_pA)
    net = Network()
    net.add_population("cell", 1, cell)
    times, _ = simulate(net, 1000.0, dt_ms=DT, backend=backend).spikes("cell")
    V_inf, tau_m = -60.0 + I_pA / 10.0, 20.0
    t_cross = tau_m * math.log((V_inf + 60.0) / (V_inf + 50.0))  # V_reset (= E_L = V0) → V_th
    T = 5.0 + t_cross  # 17.93 ms (210 pA), 13.11 ms (300 pA)
    analytic_count = math.floor((1000.0 - t_cross) / T) + 1
    assert abs(len(times) - analytic_count) <= 1
    # The discrete ISI: the crossing rounds up to whole steps, then round(t_ref/dt) held steps.
    discrete_isi = 5.0 + math.ceil(t_cross / DT) * DT  # in [T, T + dt)
    np.testing.assert_allclose(np.diff(times), discrete_isi, atol=1e-9)


# --- NMDA Mg²⁺ block -------------------------------------------------------------------------------


def _jahr_stevens(V_mV, mg_mM):
    return 1.0 / (1.0 + mg_mM / 3.57 * np.exp(-0.062 * V_mV))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("g_nS", "I_pA", "mg_mM"), [(5.0, 0.0, 1.0), (20.0, 100.0, 1.0), (20.0, 100.0, 2.0)])
def test_nmda_steady_state_solves_the_mg_block_fixed_point(backend, g_nS, I_pA, mg_mM):
    def current(V):
        return 10.0 * (-60.0 - V) + g_nS * _jahr_stevens(V, mg_mM) * (0.0 - V) + I_pA

    grid = np.linspace(-100.0, 0.0, 100_001)
    assert np.count_nonzero(np.diff(np.sign(current(grid)))) == 1  # one fixed point
    V_star = brentq(current, -100.0, 0.0, xtol=1e-13)  # −57.35, −28.40, −39.42 mV
    target = CELL.replace(V_th_mV=20.0, I_bias_pA=I_pA, mg_mM=mg_mM, tau_ms={"nmda": FROZEN_TAU_MS})
    v = _kicked(target, [("nmda", g_nS, DT)], 1000.0, DT, backend)
    assert v[-1] == pytest.approx(V_star, abs=1e-6)
    linear = (10.0 * -60.0 + I_pA) / (10.0 + g_nS)  # what B = 1 would give
    assert abs(V_star - linear) > 5.0  # so the block matters at these potentials


# --- spike-triggered adaptation --------------------------------------------------------------------
ADAPT_B_NS, ADAPT_E_MV = 1.0, -80.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptation_adds_b_per_spike(backend):
    """With τ_w frozen, g_w = n·b after n spikes: the cell fires while V∞(n·b) > V_th, i.e. 6 spikes
    for I = 260 pA, b = 1 nS (V∞(6b) = −51.25 mV), each ISI the crossing time at g_w = n·b."""
    cell = CELL.replace(I_bias_pA=260.0, adapt_b_nS=ADAPT_B_NS, adapt_E_mV=ADAPT_E_MV, adapt_tau_ms=FROZEN_TAU_MS)
    net = Network()
    net.add_population("cell", 1, cell)
    result = simulate(net, 600.0, dt_ms=DT, backend=backend, record_v={"cell": [0]})
    times, _ = result.spikes("cell")

    def v_inf(n):
        return (10.0 * -60.0 + n * ADAPT_B_NS * ADAPT_E_MV + 260.0) / (10.0 + n * ADAPT_B_NS)

    def crossing(n):
        return 200.0 / (10.0 + n * ADAPT_B_NS) * math.log((v_inf(n) + 60.0) / (v_inf(n) + 50.0))

    assert len(times) == 6
    assert times[0] == pytest.approx(math.ceil(crossing(0) / DT) * DT - DT)  # spike step of the first crossing
    expected_isi = [5.0 + math.ceil(crossing(n) / DT) * DT for n in range(1, 6)]  # 16.2 18.2 21.2 26.5 42.0 ms
    np.testing.assert_allclose(np.diff(times), expected_isi, atol=1e-9)
    assert result.voltage["cell"][-1, 0] == pytest.approx(v_inf(6), abs=EXACT_MV)  # −51.25 mV


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptation_lengthens_isi_to_the_self_consistent_value(backend):
    """τ_w = 100 ms, I = 300 pA: the ISI grows from 14.0 ms to the steady state P where g_w just after
    a spike is b/(1 − e^{−P/τ_w}) (ODE reference 21.199 ms)."""
    tau_w, I_pA = 100.0, 300.0
    cell = CELL.replace(I_bias_pA=I_pA, adapt_b_nS=ADAPT_B_NS, adapt_E_mV=ADAPT_E_MV, adapt_tau_ms=tau_w)
    net = Network()
    net.add_population("cell", 1, cell)
    isi = np.diff(simulate(net, 2000.0, dt_ms=DT, backend=backend).spikes("cell")[0])

    def isi_after(g_peak):
        """Held t_ref at V_reset while g_w decays from g_peak, then integrate to V_th."""
        g0 = g_peak * math.exp(-5.0 / tau_w)

        def rhs(t, V):
            return (10.0 * (-60.0 - V) + g0 * np.exp(-t / tau_w) * (ADAPT_E_MV - V) + I_pA) / 200.0

        def at_threshold(t, V):
            return V[0] + 50.0

        at_threshold.terminal, at_threshold.direction = True, 1
        sol = solve_ivp(rhs, (0.0, 500.0), [-60.0], events=at_threshold, rtol=1e-10, atol=1e-12)
        return 5.0 + sol.t_events[0][0]

    steady = brentq(lambda P: isi_after(ADAPT_B_NS / (1.0 - math.exp(-P / tau_w))) - P, 5.5, 200.0)
    tol = 2 * DT  # the crossing rounds up to a step (< dt) plus the first-order conductance error
    assert isi[0] == pytest.approx(isi_after(ADAPT_B_NS), abs=tol)  # 14.0 ms
    assert isi[-1] == pytest.approx(steady, abs=tol)  # 21.2 ms
    assert isi[-1] > isi[0] + 5.0
    assert (np.diff(isi) > -DT - 1e-9).all()  # non-decreasing up to one step of jitter


# --- membrane noise --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [0.1, 0.05])
def test_noise_stationary_sd_is_sigma_at_any_dt(backend, dt):
    """200 passive neurons × 2 s; the first 100 ms (5 τ_m) are discarded. The statistical error of the
    SD is ~0.5 % (≈ 2·10⁴ independent samples); the AR(1) discretisation itself gives
    σ·√((2dt/τ)/(1 − e^{−2dt/τ})) = 1.0025σ at dt = 0.1. Measured: 1.9958 (dt 0.1), 2.0010 (dt 0.05)."""
    sigma = 2.0
    net = Network()
    net.add_population("cells", 200, CELL.replace(noise_mV=sigma, V_th_mV=100.0))
    result = simulate(net, 2000.0, dt_ms=dt, seed=3, backend=backend, record_v={"cells": np.arange(200)})
    v = result.voltage["cells"][int(round(100.0 / dt)) :]
    assert v.std() == pytest.approx(sigma, rel=0.05)
    assert v.mean() == pytest.approx(-60.0, abs=0.1)

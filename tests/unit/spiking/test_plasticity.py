"""Plasticity rules against their analytic definitions, and spike sources."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thalia.spiking import Network, OneToOne, simulate
from thalia.spiking.plasticity import BCM, STDP, STDPBCM

RULE = STDP(A_plus_nS=0.1, A_minus_nS=0.12, tau_plus_ms=20.0, tau_minus_ms=30.0)


def _pair(delta_ms: float, rule=RULE) -> float:
    net = Network()
    net.add_spike_source("pre", times_ms=[[50.0]])
    net.add_spike_source("post", times_ms=[[50.0 + delta_ms]])
    net.connect("pre", "post", OneToOne(), weight_nS=1.0, plasticity=rule, name="syn")
    return float(simulate(net, 120.0, dt_ms=0.1).weights["syn"][0] - 1.0)


@pytest.mark.parametrize("delta_ms", [-40.0, -10.0, -0.5, 0.5, 10.0, 40.0])
def test_stdp_pair_follows_the_analytic_window(delta_ms):
    expected = 0.1 * math.exp(-delta_ms / 20.0) if delta_ms > 0 else -0.12 * math.exp(delta_ms / 30.0)
    assert _pair(delta_ms) == pytest.approx(expected, rel=1e-9)


def test_stdp_weights_are_clipped():
    assert _pair(1.0, STDP(A_plus_nS=5.0, w_max_nS=2.0)) == pytest.approx(1.0)
    assert _pair(-1.0, STDP(A_minus_nS=5.0, w_min_nS=0.0)) == pytest.approx(-1.0)


def _bcm(post_rate_hz: float, eta: float = 1e-6) -> float:
    net = Network()
    net.add_spike_source("pre", 50, rate_hz=20.0)
    net.add_spike_source("post", 50, rate_hz=post_rate_hz)
    rule = BCM(eta=eta, tau_pre_ms=50.0, tau_post_ms=50.0, tau_theta_ms=1e12, target_hz=30.0)  # θ stays 30 Hz
    net.connect("pre", "post", OneToOne(), weight_nS=1.0, plasticity=rule, name="syn")
    return float(np.mean(simulate(net, 2000.0, dt_ms=0.1, seed=3).weights["syn"] - 1.0))


@pytest.mark.parametrize("post_rate_hz", [2.0, 40.0])
def test_bcm_drift_matches_the_rate_prediction(post_rate_hz):
    """For independent Poisson pre (ν = 20 Hz) and post (r) trains, the traces have means ν, r and
    E[y²] = r² + r·1000/(2τ_y), so dw/dt = η·ν·(r² + r·1000/(2τ) − θ·r): below the threshold
    (r = 2 Hz: −720 η/s) depression, above (r = 40 Hz: +16000 η/s) potentiation."""
    r = post_rate_hz
    expected = 1e-6 * 2.0 * 20.0 * (r**2 + r * 1000 / 100 - 30.0 * r)
    assert _bcm(r) == pytest.approx(expected, rel=0.2)
    assert _bcm(r, eta=0.0) == 0.0


def _drift(rule, backend: str = "numba") -> np.ndarray:
    """Weight changes of 50 synapses between independent Poisson trains (pre 20 Hz, post 35 Hz)."""
    net = Network()
    net.add_spike_source("pre", 50, rate_hz=20.0)
    net.add_spike_source("post", 50, rate_hz=35.0)
    net.connect("pre", "post", OneToOne(), weight_nS=1.0, plasticity=rule, name="syn")
    return simulate(net, 1000.0, dt_ms=0.1, seed=5, backend=backend).weights["syn"] - 1.0


COMPOSITE = STDPBCM(
    STDP(A_plus_nS=2e-3, A_minus_nS=2.4e-3),
    BCM(eta=2e-8, tau_pre_ms=20.0, tau_post_ms=20.0, tau_theta_ms=200.0, target_hz=10.0),
)


def test_stdp_bcm_composite_is_the_sum_of_its_rules():
    """Neither rule's change depends on w (no clipping here), and the traces are shared, so each
    step's composite change is the STDP change plus the BCM change, and so is the total."""
    stdp, bcm, both = _drift(COMPOSITE.stdp), _drift(COMPOSITE.bcm), _drift(COMPOSITE)
    assert np.abs(stdp).max() > 1e-3 and np.abs(bcm).max() > 1e-3  # both rules act
    np.testing.assert_allclose(both, stdp + bcm, rtol=1e-9, atol=1e-12)


def test_stdp_bcm_composite_agrees_across_backends():
    np.testing.assert_allclose(_drift(COMPOSITE, "torch"), _drift(COMPOSITE, "numba"), rtol=1e-9, atol=1e-12)


def test_stdp_bcm_composite_needs_shared_time_constants():
    with pytest.raises(ValueError, match="tau_plus_ms must equal bcm.tau_pre_ms"):
        STDPBCM(STDP(tau_plus_ms=20.0), BCM(tau_pre_ms=50.0, tau_post_ms=20.0))
    with pytest.raises(ValueError, match="expected an STDP and a BCM rule"):
        STDPBCM(BCM(), STDP())
    both = STDPBCM(STDP(w_max_nS=3.0), BCM(tau_pre_ms=20.0, tau_post_ms=20.0, w_min_nS=0.5))
    assert (both.w_min_nS, both.w_max_nS) == (0.5, 3.0)


def test_given_spikes_are_emitted_at_their_steps():
    net = Network()
    net.add_spike_source("src", times_ms=[[1.0, 5.5], [2.3]])
    result = simulate(net, 10.0, dt_ms=0.1)
    times, ids = result.spikes("src")
    assert np.allclose(times, [1.0, 2.3, 5.5]) and ids.tolist() == [0, 1, 0]


def test_poisson_sources_fire_at_their_rate():
    net = Network()
    net.add_spike_source("noise", 500, rate_hz=20.0)
    result = simulate(net, 2000.0, dt_ms=0.1, seed=2)
    # 20,000 expected spikes: Poisson SD 141, so ±3 % is more than 4 SD
    assert result.rate_hz("noise") == pytest.approx(20.0, rel=0.03)


def test_bad_plasticity_and_sources_are_rejected():
    net = Network()
    net.add_population("a", 2)
    with pytest.raises(ValueError, match="plasticity"):
        net.connect("a", "a", OneToOne(), weight_nS=1.0, plasticity="hebb")
    with pytest.raises(ValueError, match="rate_hz"):
        net.add_spike_source("s", 2, rate_hz=-1.0)
    with pytest.raises(ValueError, match="tau_plus_ms"):
        STDP(tau_plus_ms=0.0)
    net.connect("a", "a", OneToOne(), weight_nS=1.0, plasticity=STDP(), name="p")
    with pytest.raises(ValueError, match="device"):
        simulate(net, 1.0, backend="numba", device="meta")

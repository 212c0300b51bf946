"""TCM: stable default, fixed point report, delayed stability, delays, multi-source cross-spectra."""

import warnings

import numpy as np
import pytest
import torch

from thalia.mass import TCM, ConvergenceWarning
from thalia.mass import tcm_constants as K
from thalia.mass.stability import count_unstable_roots

FREQS = torch.arange(1.0, 91.0, dtype=torch.float64)


def _neutral(model: TCM):
    """The original's neutral means (all log-parameters 0 but the absent connections): unstable."""
    return model.default_parameters().replace(E=np.zeros(8), H=np.zeros((8, 8, model.n_sources)))


def test_stable_default_fixed_point(tcm):
    fixed = tcm.fixed_point(tcm.default_parameters())
    assert fixed.converged and fixed.residual < 1e-9
    full_residual = tcm.flow(fixed.x, torch.zeros(1), tcm.default_parameters()).abs().max()
    assert float(full_residual) < 1e-9
    assert fixed.stable and fixed.leading_eigenvalue.real < -1.0
    assert "stable" in fixed.report() and "converged" in fixed.report()


def test_default_is_stable_with_its_delays_and_the_original_is_not(tcm):
    assert count_unstable_roots(tcm, tcm.default_parameters()).n_unstable == 0
    with_delays = count_unstable_roots(tcm, _neutral(tcm))
    assert with_delays.n_unstable > 0 and with_delays.winding_residual < 0.2


@pytest.mark.parametrize("make", [lambda m: m.default_parameters(), _neutral])
def test_winding_count_without_delays_equals_eigenvalue_count(make):
    """Two independent routes to the number of unstable modes must agree when D = 0."""
    model = TCM(delay_mode="none")
    p = make(model)
    n_positive = int((model.fixed_point(p).eigenvalues.real > 0).sum())
    assert count_unstable_roots(model, p).n_unstable == n_positive
    assert n_positive in (0, 2)


def test_fixed_point_failure_warns_with_advice_and_keeps_the_iterate(tcm):
    p = tcm.default_parameters()
    start = tcm.initial_state() + 5.0
    with pytest.warns(ConvergenceWarning, match="Fixed point solver did not fully converge") as record:
        fixed = tcm.fixed_point(p, x0=start, max_iter=1)
    assert "leak conductance" in str(record[0].message)
    assert not fixed.converged and fixed.iterations == 1
    assert not torch.allclose(fixed.x[:8], start[:8])  # not silently the initial guess


def test_hard_switch_has_no_fixed_point_at_the_original_means():
    """Part B §5.4: with the MATLAB hard switch and all parameters 0, RT sits on the jump."""
    model = TCM(firing="hard")
    zeros = {name: np.zeros(model.space[name].shape) for name in model.space.names if name != "J"}
    with pytest.warns(ConvergenceWarning):
        fixed = model.fixed_point(model.parameters(zeros), max_iter=200)
    assert not fixed.converged and fixed.residual > 1.0


def test_fixed_point_independent_of_start(tcm):
    p = tcm.default_parameters().replace(H=np.full((8, 8, 1), 0.2))
    a = tcm.fixed_point(p).x
    b = tcm.fixed_point(p, x0=tcm.initial_state()).x
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_delay_matrix_entries(tcm):
    p = tcm.default_parameters().replace(CT=np.log(1.5), TC=np.log(2.0), ID=np.full(8, np.log(0.5)))
    D = tcm.delays(p).numpy() * 1000  # ms
    ns, pop = 1, K.POPULATIONS.index
    v, gm = 0, 5  # state indices

    def idx(state, population):
        return population * ns + 8 * ns * state

    # thalamic target, cortical source: CT + ID(source)
    assert D[idx(v, pop("RT")), idx(v, pop("SS"))] == pytest.approx(8 * 1.5 + 2 * 0.5)
    # cortical target, thalamic source: TC + ID(source)
    assert D[idx(gm, pop("SS")), idx(v, pop("RC"))] == pytest.approx(3 * 2.0 + 2 * 0.5)
    # within cortex: ID of the source population only, also on the diagonal
    assert D[idx(v, pop("SS")), idx(gm, pop("SI"))] == pytest.approx(1 * 0.5)
    assert D[idx(v, pop("TP")), idx(v, pop("TP"))] == pytest.approx(2 * 0.5)
    assert D.shape == (56, 56) and np.count_nonzero(D) == 56 * 56


@pytest.mark.parametrize("name, value", [("CT", 0.5), ("TC", 0.5), ("ID", np.full(8, 0.3))])
def test_delays_change_the_spectrum(tcm, name, value):
    """CT and TC were inert in tcm_py (mis-indexed delays); here each moves the spectrum."""
    p = tcm.default_parameters()
    base = tcm.csd(p, FREQS).psd
    moved = tcm.csd(p.replace(**{name: value}), FREQS).psd
    assert float(((moved - base).abs() / base).max()) > 0.02


def test_delay_modes_differ_and_first_order_runs():
    p = TCM().default_parameters()
    spectra = {mode: TCM(delay_mode=mode).csd(p, FREQS).psd for mode in ("elementwise", "first_order", "none")}
    for a, b in [("elementwise", "none"), ("first_order", "none"), ("elementwise", "first_order")]:
        assert float(((spectra[a] - spectra[b]).abs() / spectra[b]).max()) > 0.01
    assert all(bool((s > 0).all()) for s in spectra.values())


def _two_sources(connected: bool, strength: float = 0.0) -> tuple[TCM, dict]:
    model = TCM(2, extrinsic={"forward": [(0, 1)]} if connected else None)
    p = model.default_parameters().replace(b=[-32.0, 0.0])  # common channel noise ~1e-15
    if connected:
        a = p["A"].clone()
        a[0, 1, 0] = strength  # forward (SP of source 1 -> SS of source 2)
        p = p.replace(A=a)
    return model, p


@pytest.mark.parametrize("strength, min_coherence", [(0.0, 1e-3), (2.0, 0.05)])
def test_forward_connection_gives_cross_spectra(strength, min_coherence):
    model, p = _two_sources(connected=True, strength=strength)
    csd = model.csd(p, FREQS)
    assert csd.data.shape == (90, 2, 2)
    assert float(csd.coherence()[:, 0, 1].max()) > min_coherence
    torch.testing.assert_close(csd.data, csd.data.conj().transpose(1, 2))


def test_disconnected_sources_have_zero_cross_spectra():
    """Off the diagonal only the common channel noise Gn = exp(b0 − 2)·f^-exp(b1) remains (absent
    connections have log gain −32, i.e. 1e-14: zero to 1e-12 of the auto-spectra)."""
    model, p = _two_sources(connected=False)
    csd = model.csd(p, FREQS)
    common_noise = np.exp(-32.0 - 2.0) / FREQS
    residual = (csd.data[:, 0, 1] - common_noise).abs()
    assert float((residual / csd.psd[:, 0]).max()) < 1e-12
    # and each source alone is the one-source model
    single = TCM().csd(TCM().default_parameters().replace(b=[-32.0, 0.0]), FREQS).psd[:, 0]
    torch.testing.assert_close(csd.psd[:, 0], single, rtol=1e-10, atol=0)


def test_forward_connection_changes_the_receiving_source_only():
    (m1, p1), (m0, p0) = _two_sources(True, 1.0), _two_sources(False)
    connected, alone = m1.csd(p1, FREQS).psd, m0.csd(p0, FREQS).psd
    torch.testing.assert_close(connected[:, 0], alone[:, 0], rtol=1e-9, atol=0)  # sender unchanged
    assert float(((connected[:, 1] - alone[:, 1]).abs() / alone[:, 1]).max()) > 1e-3


def test_state_view_names(tcm):
    x = tcm.fixed_point(tcm.default_parameters()).x
    view = tcm.state_view(x)
    assert float(view["V", "RT"][0]) == float(x[6])
    assert float(view["AMPA", "SS"][0]) == float(x[8])
    assert tcm.state_names()[8] == "AMPA_SS[0]"


def test_default_fixed_point_does_not_warn(tcm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tcm.csd(tcm.default_parameters(), FREQS)


def test_far_parameters_converge_by_continuation_and_batches_flag_failures(tcm):
    """Draws at 3 prior SDs: the eager solver converges for all (continuation from the default
    when Newton from the predicted start fails); the fixed-iteration batch path reports its residual."""
    space = tcm.space
    gen = torch.Generator().manual_seed(1)
    thetas = space.prior_mean_vector() + 3 * space.prior_var_vector().sqrt() * torch.randn(
        60, space.size, generator=gen, dtype=torch.float64
    )
    from thalia.params import ParameterSet

    fixed = [tcm.fixed_point(ParameterSet.from_vector(space, th), warn=False) for th in thetas]
    assert all(f.converged and f.residual < 1e-9 for f in fixed)
    _, residual = torch.func.vmap(lambda th: tcm.csd_tensor(space.unpack(th), FREQS, return_residual=True))(thetas)
    full = torch.stack(
        [
            tcm.flow(tcm.fixed_point_state(space.unpack(th)), torch.zeros(1), space.unpack(th)).abs().max()
            for th in thetas
        ]
    )
    torch.testing.assert_close(residual, full, rtol=1e-6, atol=1e-9)
    assert torch.equal(residual < 1e-8, full < 1e-8)


def test_singular_jacobian_does_not_crash(tcm):
    """A Newton step on a singular Jacobian is rejected, not raised (the solver then reports)."""
    from thalia.mass.fixed_point import damped_newton

    def flat(v):  # F(v) = (v0² + 1, 0): no root, Jacobian singular everywhere in its 2nd row
        jac = torch.tensor([[2 * float(v[0]), 0.0], [0.0, 0.0]], dtype=torch.float64)
        return torch.stack([v[0] ** 2 + 1.0, 0 * v[1]]), jac

    result = damped_newton(flat, torch.tensor([1.0, 1.0], dtype=torch.float64), max_iter=5)
    assert not result.converged


def test_csd_batch_falls_back_to_the_eager_solver(tcm):
    """Far draws whose batched Newton fails are re-solved eagerly: each set then has the eager
    solver's residual and CSD (a set with no fixed point found keeps a large, reported residual)."""
    from thalia.params import ParameterSet

    space = tcm.space
    gen = torch.Generator().manual_seed(1)
    thetas = space.prior_mean_vector() + 3 * space.prior_var_vector().sqrt() * torch.randn(
        300, space.size, generator=gen, dtype=torch.float64
    )
    _, raw = tcm.csd_batch(thetas, FREQS, fallback=False)
    failed = torch.nonzero(~(raw <= 1e-8)).flatten().tolist()
    assert len(failed) > 0  # the fixed-iteration path alone misses some at 3 prior SDs
    csd, residual = tcm.csd_batch(thetas, FREQS)
    assert float(residual.max()) < 1e-9
    for k in failed:
        p = ParameterSet.from_vector(space, thetas[k])
        fixed = tcm.fixed_point(p, warn=False)
        assert residual[k] == pytest.approx(fixed.residual, rel=1e-6, abs=1e-11)
        if fixed.converged:
            torch.testing.assert_close(csd[k], tcm.csd(p, FREQS).data, rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match=r"Invalid shape for 'thetas': expected \(n_sets, 324\)"):
        tcm.csd_batch(thetas[:, :10], FREQS)

"""The tcm_py seed README's quick start, as written (with thalia's import path), and its numbers."""

import numpy as np
import pytest

from thalia.mass import tcm_constants as K


def test_seed_quick_start_runs_as_written():
    from thalia.tcm import default_model, laplace_transfer_function, tc_hilge2

    P, M = default_model(ns=1)
    x = np.zeros(M["n_states"])
    u = np.zeros(M["n_inputs"])

    dx = tc_hilge2(x, u, P, M)

    w = np.linspace(1, 100, 128)
    G = laplace_transfer_function(P, M, w)

    # at x = 0 every conductance is 0, so C dV/dt = GL (V_L − 0) with GL = 1: dV/dt = −70 / C
    np.testing.assert_allclose(dx[:8], -70.0 / K.CAPACITANCE, rtol=1e-14)
    assert G.shape == (128, 1, 1) and np.iscomplexobj(G)
    assert np.all(G[:, 0, 0].real > 0) and np.allclose(G[:, 0, 0].imag, 0, atol=1e-15)


def test_default_model_options():
    from thalia.tcm import default_model, tc_hilge2

    P, M = default_model(ns=2)
    assert M["n_states"] == 112 and M["n_inputs"] == 2 and M["x"].shape == (112,)
    assert P["H"].shape == (8, 8, 2) and P["A"].shape == (5, 2, 2) and P["T"].shape == (2, 6)
    # M["x"] is the fixed point of P
    assert np.abs(tc_hilge2(M["x"], np.zeros(2), P, M)).max() < 1e-9


def test_state_array_in_matlab_layout_is_vectorised_in_fortran_order():
    from thalia.tcm import default_model, tc_hilge2

    P, M = default_model(ns=2)
    rng = np.random.default_rng(0)
    cube = -50 + rng.normal(size=(2, 8, 7))
    np.testing.assert_array_equal(
        tc_hilge2(cube, np.zeros(2), P, M), tc_hilge2(cube.reshape(-1, order="F"), np.zeros(2), P, M)
    )


def test_partial_parameter_dicts_merge_into_the_defaults():
    from thalia.tcm import default_model, laplace_transfer_function

    P, M = default_model()
    w = np.arange(1.0, 91.0)
    full = laplace_transfer_function(dict(P, CT=0.5), M, w)
    partial = laplace_transfer_function({"CT": 0.5}, M, w)
    np.testing.assert_array_equal(full, partial)
    assert np.abs(full - laplace_transfer_function(P, M, w)).max() > 0


def test_jacobian_and_delays():
    from thalia.tcm import compute_delays, compute_jacobian, default_model, tc_hilge2

    P, M = default_model()
    x, u = M["x"], np.zeros(1)
    A = compute_jacobian(x, u, P, M)
    h = 1e-5
    column = (tc_hilge2(x + h * np.eye(56)[3], u, P, M) - tc_hilge2(x - h * np.eye(56)[3], u, P, M)) / (2 * h)
    np.testing.assert_allclose(A[:, 3], column, rtol=1e-6, atol=1e-6 * np.abs(A).max())
    B = compute_jacobian(x, u, P, M, wrt="u")
    assert B.shape == (56, 1) and set(np.nonzero(B[:, 0])[0]) == {8 + 6, 8 + 7}  # RT and RC AMPA
    np.testing.assert_allclose(B[[14, 15], 0], 1000.0 / 2.2)  # K_AMPA·exp(C), C = 0
    D = compute_delays(P, M)
    assert D[6, 0] == pytest.approx((8 + 2) / 1000)  # V_RT <- V_SS: CT + ID(SS)


def test_seed_thermodynamic_fit_runs_as_written():
    """The seed's step 3, ``m, V, diagnostics = fit_variational_laplace_thermo(y, forward_model, m0, S0)``,
    with a NumPy forward model over two TCM parameters (the CT and TC delays): it recovers them."""
    from thalia.tcm import default_model, fit_variational_laplace_thermo, laplace_transfer_function

    P, M = default_model(ns=1)
    w = np.arange(2.0, 60.0, 2.0)

    def forward_model(m):
        return laplace_transfer_function({**P, "CT": m[0], "TC": m[1]}, M, w)[:, 0, 0].real

    truth = np.array([0.3, -0.2])
    y = forward_model(truth)
    m0, S0 = np.zeros(2), np.eye(2) / 4
    m, V, diagnostics = fit_variational_laplace_thermo(
        y, forward_model, m0, S0, n_stages=4, precision_components=np.diag(1 / y**2)
    )
    assert isinstance(m, np.ndarray) and V.shape == (2, 2)
    np.testing.assert_allclose(m, truth, atol=0.02)
    assert diagnostics["converged"] and np.isfinite(diagnostics["log_evidence"])

"""Delay operators and SPM's modal spectral mode, checked against exact characteristic roots and the
Laplace-domain transfer functions of the TCM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thalia.mass import TCM, spm
from thalia.mass import spm_spectral as ss
from thalia.mass.delays import exact_delay_jacobian, first_order_operator, spm_series_operator

# a damped two-population loop: dx/dt = J x(t − D) with the coupling delayed (s)
J2 = torch.tensor([[-100.0, -400.0], [300.0, -80.0]], dtype=torch.float64)
MASK = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)


def characteristic_residual(J, D, lam):
    """Smallest singular value of λI − J∘e^{−λD} (0 at a characteristic root)."""
    m = lam * torch.eye(J.shape[0], dtype=torch.complex128) - J.to(torch.complex128) * torch.exp(-lam * D)
    return float(torch.linalg.svdvals(m)[-1]) / float(J.abs().max())


def test_exact_delayed_modes_are_characteristic_roots():
    D = 2e-3 * MASK
    x = exact_delay_jacobian(J2, D)
    for lam in torch.linalg.eigvals(x):
        assert characteristic_residual(J2, D, lam) <= 1e-13
    undelayed = torch.linalg.eigvals(J2)
    assert (torch.linalg.eigvals(x) - undelayed).abs().min() > 1.0  # the delay moved them


def test_first_order_operator_is_second_order_accurate():
    """Q = (I + D∘J)⁻¹ (D ≥ 0): the modes of QJ err by O(d²) from the exact roots (the opposite sign, SPM's
    (I − D∘J)⁻¹ applied to positive delays, errs by O(d))."""
    errors, wrong_sign = [], []
    for d in (1e-4, 5e-5):
        D = d * MASK
        exact = np.sort_complex(torch.linalg.eigvals(exact_delay_jacobian(J2, D)).numpy())
        approx = np.sort_complex(torch.linalg.eigvals(first_order_operator(J2, D) @ J2).numpy())
        flipped = np.sort_complex(torch.linalg.eigvals(first_order_operator(J2, -D) @ J2).numpy())
        errors.append(np.abs(approx - exact).max())
        wrong_sign.append(np.abs(flipped - exact).max())
    assert 3.5 < errors[0] / errors[1] < 4.5  # halving d quarters the error
    assert 1.8 < wrong_sign[0] / wrong_sign[1] < 2.2  # first order only


def test_spm_series_is_within_its_tolerance_of_the_exact_solution():
    D = 2e-3 * MASK
    exact = exact_delay_jacobian(J2, D)
    series = spm_series_operator(J2, D) @ J2
    err = float((series - exact).abs().max() / exact.abs().max())
    assert 0 < err <= 1e-5


def test_tcm_modal_mode_equals_laplace_transfer_without_the_transform():
    """SPM's modal expansion (no eigenvalue transform) and TCM's linear solves give one transfer function."""
    freqs = torch.arange(2.0, 80.0, 3.0, dtype=torch.float64)
    for delay_mode, method in (("none", "none"), ("first_order", "first_order")):
        model = TCM(delay_mode=delay_mode)
        p = model.default_parameters()
        t = model._tensors(p)
        x = model.fixed_point(p).x
        J, B = ss.derivatives(model, t, x, "exact")
        q = ss.delay_operator(J, model.delays(t), method)
        modal, _, _ = ss.modal_transfer(q @ J, q @ B, model.observation(t), freqs, transform=False)
        laplace = model.transfer(p, freqs, method="dense")
        assert float((modal - laplace).abs().max() / laplace.abs().max()) <= 1e-9


def test_tcm_spm_mode_runs_and_differs_from_exact_delays():
    model = TCM()
    p = model.default_parameters()
    freqs = np.arange(4, 49)
    response = spm.spectral_response(model, p, freqs, jacobian="exact")
    assert response.csd.shape == (45, 1, 1) and torch.isfinite(response.csd).all()
    fd = spm.spectral_response(model, p, freqs, jacobian="finite_difference")
    assert float((fd.csd - response.csd).abs().max() / response.csd.abs().max()) < 1e-3
    exact = model.csd(p, freqs).data
    assert float((exact - response.csd).abs().max() / exact.abs().max()) > 1e-2


@pytest.mark.parametrize("step", [1e-3, 1e-5])
def test_forward_difference_matches_analytic_derivative(step):
    def fun(z):
        return torch.stack([z[0] ** 2 * z[1], torch.sin(z[1])])

    z = torch.tensor([0.7, -0.3], dtype=torch.float64)
    fd = ss.forward_difference(fun, z, step)
    exact = torch.func.jacfwd(fun)(z)
    # forward differences err by (h/2)·f'' to first order
    second = torch.func.jacfwd(torch.func.jacfwd(fun))(z)
    predicted = step / 2 * torch.stack([second[:, 0, 0], second[:, 1, 1]], dim=1)
    assert float((fd - exact - predicted).abs().max()) <= 5 * step**2


def test_dct_basis_is_orthonormal_and_spm_like():
    basis = ss.dct_basis(45, 5, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(basis.T @ basis, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-14)
    n = torch.arange(45, dtype=torch.float64)
    torch.testing.assert_close(basis[:, 2], (2 / 45) ** 0.5 * torch.cos(torch.pi * (2 * n + 1) * 2 / 90))


def test_clustered_modes_fall_back_to_a_converged_series():
    """Three near-identical coupled CMC sources have clustered, nearly defective modes: the per-mode Newton
    iteration cannot separate them, and the series iterated to 1e-12 takes over."""
    from thalia.mass import CMC
    from thalia.mass.delays import delay_operator

    model = CMC(3, forward=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], backward=[[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    t = model._tensors(model.default_parameters())
    J = model.jacobian(model.expansion_point(t), t)
    D = model.delays(t)
    x = delay_operator(J, D, "exact") @ J
    series, power = J.clone(), torch.eye(24, dtype=torch.float64)
    for n in range(1, 120):
        power = power @ x / n
        series = series + (J * (-D) ** n) @ power
    assert float((series - x).abs().max() / x.abs().max()) <= 1e-10
    spm_like = spm_series_operator(J, D) @ J
    assert 0 < float((spm_like - x).abs().max() / x.abs().max()) <= 1e-5

"""Thermodynamic VL: tempering β: 0 → 1 and the thermodynamic-integration log evidence, checked on a
linear-Gaussian model whose evidence is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thalia.inference import fit_variational_laplace_thermo
from thalia.inference.thermo import power_schedule, thermodynamic_integral

F64 = torch.float64


@pytest.fixture(scope="module")
def linear():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 4, generator=g, dtype=F64)
    prior_cov = torch.diag(torch.tensor([1.0, 0.5, 2.0, 0.25], dtype=F64))
    lam = 25.0
    y = A @ torch.tensor([0.8, -0.4, 1.0, 0.3], dtype=F64) + torch.randn(40, generator=g, dtype=F64) / math.sqrt(lam)
    marginal = A @ prior_cov @ A.T + torch.eye(40, dtype=F64) / lam
    evidence = torch.distributions.MultivariateNormal(torch.zeros(40, dtype=F64), marginal).log_prob(y).item()
    post_cov = torch.linalg.inv(torch.linalg.inv(prior_cov) + lam * A.T @ A)
    return dict(
        A=A, y=y, lam=lam, prior_cov=prior_cov, evidence=evidence, cov=post_cov, mean=post_cov @ (lam * A.T @ y)
    )


def test_thermodynamic_evidence_equals_closed_form_and_F(linear):
    A = linear["A"]
    m, V, diagnostics = fit_variational_laplace_thermo(
        linear["y"],
        lambda t: A @ t,
        torch.zeros(4, dtype=F64),
        linear["prior_cov"],
        hE=math.log(linear["lam"]),
        hC=0,
        tol=1e-6,
    )
    assert diagnostics["log_evidence"] == pytest.approx(linear["evidence"], abs=1e-3)
    assert diagnostics["F"] == pytest.approx(linear["evidence"], abs=1e-6)
    assert torch.allclose(m, linear["mean"], atol=1e-7)
    assert torch.allclose(V, linear["cov"], atol=1e-12)
    assert diagnostics["schedule"][0] == 0.0 and diagnostics["schedule"][-1] == 1.0
    assert len(diagnostics["iterations"]) == 16 and diagnostics["converged"]


def test_seed_signature_numpy_in_numpy_out(linear):
    A = linear["A"].numpy()
    m, V, diagnostics = fit_variational_laplace_thermo(
        linear["y"].numpy(), lambda t: A @ t, np.zeros(4), np.diag(linear["prior_cov"].numpy()), n_stages=6, hE=3.0
    )
    assert isinstance(m, np.ndarray) and m.shape == (4,) and V.shape == (4, 4)
    assert np.allclose(m, linear["mean"].numpy(), atol=0.05)
    assert diagnostics["posterior"].log_evidence == diagnostics["log_evidence"]


def test_integral_rule_converges_on_a_sharply_varying_integrand():
    """E(β) = −1000/(1 + 100β) (steep near β = 0, like a broad prior), ∫₀¹ E dβ = −10·ln 101."""
    exact = -10 * math.log(101)
    errors = []
    for n in (8, 16, 32):
        betas = power_schedule(n).numpy()
        means = -1000 / (1 + 100 * betas)
        slopes = 1e5 / (1 + 100 * betas) ** 2
        errors.append(abs(thermodynamic_integral(betas, means, slopes) - exact))
    assert errors[1] < 1e-2 and errors[2] < errors[1] / 8 < errors[0] / 8


def test_bad_schedule_is_rejected(linear):
    A = linear["A"]
    with pytest.raises(ValueError, match="schedule"):
        fit_variational_laplace_thermo(
            linear["y"], lambda t: A @ t, torch.zeros(4), torch.ones(4), schedule=[0.5, 0.2, 1]
        )

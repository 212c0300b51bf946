"""Bayesian model reduction: exact against closed-form linear-Gaussian posteriors and evidences."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from thalia.inference.bmr import compare, reduce

DT = torch.float64


def linear_gaussian(A, y, noise_var, prior_mean, prior_cov, labels=None):
    """Closed-form posterior and log evidence of y = Aθ + e, e ~ N(0, noise_var·I), θ ~ N(η, Σ).

    Written in covariance form, so that a singular prior covariance (fixed parameters) needs no inverse.
    """
    S = A @ prior_cov @ A.T + noise_var * torch.eye(A.shape[0], dtype=DT)
    gain = torch.linalg.solve(S, A @ prior_cov).T
    resid = y - A @ prior_mean
    mean = prior_mean + gain @ resid
    cov = prior_cov - gain @ A @ prior_cov
    log_ev = -0.5 * (resid @ torch.linalg.solve(S, resid) + torch.logdet(S) + A.shape[0] * math.log(2 * math.pi))
    return SimpleNamespace(
        mean=mean, cov=(cov + cov.T) / 2, prior_mean=prior_mean, prior_cov=prior_cov, F=float(log_ev), labels=labels
    )


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(11)
    n_obs, n_par = 12, 5
    A = torch.randn(n_obs, n_par, generator=gen, dtype=DT)
    theta = torch.tensor([0.0, 1.5, -0.7, 0.3, 0.0], dtype=DT)
    noise_var = 0.25
    y = A @ theta + math.sqrt(noise_var) * torch.randn(n_obs, generator=gen, dtype=DT)
    prior_mean = torch.tensor([0.1, 0.0, -0.2, 0.0, 0.05], dtype=DT)
    B = torch.randn(n_par, n_par, generator=gen, dtype=DT)
    prior_cov = B @ B.T / n_par + 0.5 * torch.eye(n_par, dtype=DT)  # dense, correlated
    labels = tuple(f"p{i}" for i in range(n_par))
    return SimpleNamespace(A=A, y=y, noise_var=noise_var, prior_mean=prior_mean, prior_cov=prior_cov, labels=labels)


def _reductions(problem):
    eta, sigma = problem.prior_mean, problem.prior_cov
    shrink = sigma.clone()
    shrink[1, :] *= 0.5
    shrink[:, 1] *= 0.5
    off = sigma.clone()
    off[[0, 4], :] = 0.0
    off[:, [0, 4]] = 0.0
    shifted = eta + torch.tensor([0.3, -0.2, 0.0, 0.4, 0.0], dtype=DT)
    dense = 0.3 * sigma + 0.05 * torch.ones(5, 5, dtype=DT)
    diag = torch.diag(torch.tensor([0.0, 2.0, 0.1, 0.0, 0.5], dtype=DT))
    return {
        "shrink": (eta, shrink),
        "switch_off": (eta, off),
        "shift_mean": (shifted, sigma),
        "shift_and_switch_off": (shifted, off),
        "dense": (shifted, dense),
        "wider_diagonal": (shifted, diag),
    }


CASES = ["shrink", "switch_off", "shift_mean", "shift_and_switch_off", "dense", "wider_diagonal"]


@pytest.mark.parametrize("case", CASES)
def test_reduce_matches_closed_form(problem, case):
    full = linear_gaussian(problem.A, problem.y, problem.noise_var, problem.prior_mean, problem.prior_cov)
    r_mean, r_cov = _reductions(problem)[case]
    exact = linear_gaussian(problem.A, problem.y, problem.noise_var, r_mean, r_cov)
    out = reduce(full, reduced_mean=r_mean, reduced_cov=r_cov)
    assert torch.allclose(out.mean, exact.mean, atol=1e-9, rtol=0)
    assert torch.allclose(out.cov, exact.cov, atol=1e-9, rtol=0)
    assert out.dF == pytest.approx(exact.F - full.F, abs=1e-8)
    assert out.F == pytest.approx(exact.F, abs=1e-8)


def test_reduce_with_fixed_parameters_in_full_prior(problem):
    """A full prior with a zero-variance parameter: BMR works on the free subspace, never inverting Σ."""
    sigma = torch.diag(torch.tensor([1.0, 2.0, 0.0, 0.5, 1.0], dtype=DT))
    full = linear_gaussian(problem.A, problem.y, problem.noise_var, problem.prior_mean, sigma)
    r_cov = torch.diag(torch.tensor([0.2, 2.0, 0.0, 0.0, 0.3], dtype=DT))
    r_mean = problem.prior_mean + torch.tensor([0.5, 0.0, 0.0, 0.1, -0.2], dtype=DT)
    exact = linear_gaussian(problem.A, problem.y, problem.noise_var, r_mean, r_cov)
    out = reduce(
        mean=full.mean,
        cov=full.cov,
        prior_mean=full.prior_mean,
        prior_cov=full.prior_cov,
        F=full.F,
        reduced_mean=r_mean,
        reduced_cov=r_cov,
    )
    assert torch.allclose(out.mean, exact.mean, atol=1e-9, rtol=0)
    assert torch.allclose(out.cov, exact.cov, atol=1e-9, rtol=0)
    assert out.F == pytest.approx(exact.F, abs=1e-8)
    assert out.cov[2].abs().max() == 0.0 and out.cov[3].abs().max() == 0.0


def test_zero_variance_is_the_limit_of_vanishing_variance(problem):
    full = linear_gaussian(problem.A, problem.y, problem.noise_var, problem.prior_mean, problem.prior_cov)
    r_mean = problem.prior_mean + torch.tensor([0.0, 0.0, 0.4, 0.0, 0.0], dtype=DT)
    cov_off = problem.prior_cov.clone()
    cov_off[2, :] = 0.0
    cov_off[:, 2] = 0.0
    exact = reduce(full, reduced_mean=r_mean, reduced_cov=cov_off)
    gaps = []
    for eps in (1e-3, 1e-5, 1e-7, 1e-9):
        cov_eps = cov_off.clone()
        cov_eps[2, 2] = eps
        near = reduce(full, reduced_mean=r_mean, reduced_cov=cov_eps)
        gaps.append(abs(near.dF - exact.dF) + float((near.mean - exact.mean).abs().max()))
    assert gaps[-1] < 1e-6
    # the gap to the exact-0 result shrinks monotonically
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:], strict=False))
    assert exact.mean[2] == pytest.approx(float(r_mean[2]), abs=1e-12)


def test_compare_picks_the_true_model(problem):
    # θ_true = (0, 1.5, −0.7, 0.3, 0): parameter 0 is truly zero, parameter 1 strongly non-zero
    prior_mean = torch.zeros(5, dtype=DT)
    full = linear_gaussian(problem.A, problem.y, problem.noise_var, prior_mean, torch.eye(5, dtype=DT), problem.labels)
    result = compare(full, {"no_p0": ["p0"], "no_p1": [1], "no_p0_p1": [True, True, False, False, False]})
    assert list(result.models) == ["full", "no_p0", "no_p1", "no_p0_p1"]
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
    assert result.best == "no_p0"
    assert result.probabilities["no_p1"] < 1e-6
    reduced = torch.eye(5, dtype=DT)
    reduced[0, 0] = 0.0
    exact = linear_gaussian(problem.A, problem.y, problem.noise_var, prior_mean, reduced)
    assert result.dF["no_p0"] == pytest.approx(exact.F - full.F, abs=1e-8)
    assert result.models["no_p0"].F == pytest.approx(exact.F, abs=1e-8)


def _full(problem):
    return linear_gaussian(problem.A, problem.y, problem.noise_var, problem.prior_mean, problem.prior_cov)


def test_reduce_rejects_bad_input(problem):
    full = _full(problem)
    eta, sigma = problem.prior_mean, problem.prior_cov
    with pytest.raises(ValueError, match=r"Invalid shape for 'reduced_mean': expected \(5,\), got \(4,\)"):
        reduce(full, reduced_mean=eta[:4], reduced_cov=sigma)
    with pytest.raises(ValueError, match=r"Invalid shape for 'reduced_cov': expected \(5, 5\), got \(5, 4\)"):
        reduce(full, reduced_mean=eta, reduced_cov=sigma[:, :4])
    bad = sigma.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"'cov': expected finite numbers, got 1 non-finite"):
        reduce(mean=full.mean, cov=bad, prior_mean=eta, prior_cov=sigma, reduced_mean=eta, reduced_cov=sigma)
    indefinite = sigma - 2.0 * torch.eye(5, dtype=DT) * float(torch.linalg.eigvalsh(sigma).max())
    with pytest.raises(ValueError, match=r"'reduced_cov': expected a positive semi-definite.*got an eigenvalue of -"):
        reduce(full, reduced_mean=eta, reduced_cov=indefinite)
    with pytest.raises(ValueError, match=r"'posterior.prior_cov': expected a symmetric"):
        asymmetric = SimpleNamespace(**{**vars(full), "prior_cov": sigma + torch.triu(sigma, 1)})
        reduce(asymmetric, reduced_mean=eta, reduced_cov=sigma)
    with pytest.raises(ValueError, match=r"pass either 'posterior' or explicit 'mean', not both"):
        reduce(full, mean=full.mean, reduced_mean=eta, reduced_cov=sigma)
    with pytest.raises(ValueError, match=r"Missing 'prior_cov'"):
        reduce(mean=full.mean, cov=full.cov, prior_mean=eta, reduced_mean=eta, reduced_cov=sigma)


def test_reduce_cannot_free_a_fixed_parameter(problem):
    sigma = torch.diag(torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=DT))
    full = linear_gaussian(problem.A, problem.y, problem.noise_var, problem.prior_mean, sigma)
    with pytest.raises(ValueError, match=r"'reduced_cov': it gives prior variance to parameters"):
        reduce(full, reduced_mean=problem.prior_mean, reduced_cov=torch.eye(5, dtype=DT))
    moved = problem.prior_mean + torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=DT)
    with pytest.raises(ValueError, match=r"'reduced_mean': it moves parameters that have zero prior variance"):
        reduce(full, reduced_mean=moved, reduced_cov=sigma)


def test_compare_rejects_bad_reductions(problem):
    full = _full(problem)
    with pytest.raises(ValueError, match=r"'reductions\[.a.\]': expected a boolean mask of length 5.*got \[7\]"):
        compare(full, {"a": [7]})
    with pytest.raises(ValueError, match=r"Invalid value for 'reductions'"):
        compare(full, {"full": [0]})
    with pytest.raises(ValueError, match=r"'reductions\[.b.\]': parameter names need a posterior with 'labels'"):
        compare(full, {"b": ["p0"]})

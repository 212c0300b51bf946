"""Variational Laplace on problems with known answers: linear-Gaussian models (closed-form posterior and
evidence), failing models, batches, warm starts, save/load and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thalia.inference import Posterior, Status, variational_laplace, variational_laplace_batch
from thalia.inference.bmr import reduce

F64 = torch.float64


@pytest.fixture(scope="module")
def linear():
    """y = Aθ + ε with ε ~ N(0, I/λ): exact posterior and log evidence."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 4, generator=g, dtype=F64)
    prior_mean = torch.tensor([0.1, 0.0, -0.2, 0.0], dtype=F64)
    prior_cov = torch.diag(torch.tensor([1.0, 0.5, 2.0, 0.25], dtype=F64))
    lam = 25.0
    theta = torch.tensor([0.8, -0.4, 1.0, 0.3], dtype=F64)
    y = A @ theta + torch.randn(40, generator=g, dtype=F64) / math.sqrt(lam)
    precision = torch.linalg.inv(prior_cov) + lam * A.T @ A
    cov = torch.linalg.inv(precision)
    mean = cov @ (torch.linalg.inv(prior_cov) @ prior_mean + lam * A.T @ y)
    marginal = A @ prior_cov @ A.T + torch.eye(40, dtype=F64) / lam
    evidence = torch.distributions.MultivariateNormal(A @ prior_mean, marginal).log_prob(y).item()
    return dict(A=A, y=y, lam=lam, prior_mean=prior_mean, prior_cov=prior_cov, mean=mean, cov=cov, evidence=evidence)


def _fit(lin, **options):
    A = lin["A"]
    options = {"hE": math.log(lin["lam"]), "hC": 0, "tol": 1e-8, **options}
    return variational_laplace(lambda t: A @ t, lin["y"], lin["prior_mean"], lin["prior_cov"], **options)


def test_linear_gaussian_posterior_and_evidence_are_exact(linear):
    post = _fit(linear)
    assert post.status is Status.CONVERGED
    assert torch.allclose(post.mean, linear["mean"], atol=1e-8)
    assert torch.allclose(post.cov, linear["cov"], atol=1e-12)
    assert post.F == pytest.approx(linear["evidence"], abs=1e-6)
    assert sum(post.L) == pytest.approx(post.F, abs=1e-12)


def test_estimated_noise_precision_and_evidence(linear):
    """Unknown noise: the evidence integrates over h ~ N(hE, hC) (1-D quadrature); F is its Laplace
    approximation and the posterior log-precision is near the true ln λ."""
    from scipy import integrate

    A, y = linear["A"], linear["y"]
    hE, hC = 2.0, 1.0
    post = variational_laplace(lambda t: A @ t, y, linear["prior_mean"], linear["prior_cov"], hE=hE, hC=hC, tol=1e-8)

    def log_integrand(h):
        marginal = A @ linear["prior_cov"] @ A.T + torch.eye(40, dtype=F64) * math.exp(-h)
        lp = torch.distributions.MultivariateNormal(A @ linear["prior_mean"], marginal).log_prob(y).item()
        return lp - (h - hE) ** 2 / (2 * hC) - 0.5 * math.log(2 * math.pi * hC)

    peak = log_integrand(math.log(linear["lam"]))
    value, _ = integrate.quad(lambda h: math.exp(log_integrand(h) - peak), -10, 20, limit=400)
    assert post.F == pytest.approx(peak + math.log(value), abs=0.1)
    assert float(post.noise_log_precision[0]) == pytest.approx(math.log(linear["lam"]), abs=0.5)


def test_numpy_model_uses_finite_differences_and_agrees(linear):
    A = linear["A"].numpy()
    post = variational_laplace(
        lambda t: A @ t,
        linear["y"].numpy(),
        linear["prior_mean"].numpy(),
        linear["prior_cov"].numpy(),
        hE=math.log(linear["lam"]),
        hC=0,
        tol=1e-8,
    )
    assert post.F == pytest.approx(linear["evidence"], abs=1e-5)


def test_nan_model_fails_with_a_message_not_nan_posteriors(linear):
    A = linear["A"]
    post = variational_laplace(lambda t: A @ t * float("nan"), linear["y"], linear["prior_mean"], linear["prior_cov"])
    assert post.status is Status.FAILED and not post.converged
    assert "non-finite" in post.message and "prior" in post.message
    assert torch.equal(post.mean, linear["prior_mean"])
    assert bool(torch.isfinite(post.cov).all())


def test_model_failing_away_from_the_prior_backs_off_and_reports(linear):
    """NaN wherever θ₀ > 0.3: the fit backs off (as SPM) and, if it still cannot go on, returns the
    last good estimate with a failed status; no NaN in the result."""
    A = linear["A"]

    def model(t):
        return torch.where(t[0] > 0.3, torch.full((40,), float("nan"), dtype=F64), A @ t)

    post = variational_laplace(model, linear["y"], linear["prior_mean"], linear["prior_cov"], hC=0, hE=3.0)
    assert bool(torch.isfinite(post.mean).all()) and math.isfinite(post.F)
    assert float(post.mean[0]) <= 0.3
    assert post.status in (Status.FAILED, Status.CONVERGED)


def test_batch_equals_separate_fits_and_isolates_failures(linear):
    A = linear["A"]
    ys = torch.stack([linear["y"], 2 * linear["y"], torch.full((40,), float("inf"), dtype=F64).nan_to_num(1e300)])
    batch = variational_laplace_batch(lambda t: A @ t, ys, linear["prior_mean"], linear["prior_cov"], tol=1e-6)
    for y, post in zip(ys[:2], batch[:2], strict=True):
        single = variational_laplace(lambda t: A @ t, y, linear["prior_mean"], linear["prior_cov"], tol=1e-6)
        assert post.F == pytest.approx(single.F, abs=1e-9)
        assert torch.allclose(post.mean, single.mean, atol=1e-10)
    assert batch[0].converged and batch[1].converged
    assert batch[2].status is Status.FAILED and "not finite" in batch[2].message
    assert torch.equal(batch[2].mean, linear["prior_mean"])


def test_warm_start_from_a_posterior(linear):
    A = linear["A"]
    cold = variational_laplace(lambda t: A @ t, linear["y"], linear["prior_mean"], linear["prior_cov"])
    warm = variational_laplace(lambda t: A @ t, linear["y"], linear["prior_mean"], linear["prior_cov"], init=cold)
    assert warm.iterations < cold.iterations
    assert warm.F == pytest.approx(cold.F, abs=0.1)


def test_bmr_agrees_with_refitting_the_reduced_model(linear):
    """Bayesian model reduction of a VL posterior against VL on the reduced prior (shrunk variance)."""
    A = linear["A"]
    full = _fit(linear, tol=1e-10)
    reduced_cov = linear["prior_cov"].clone()
    reduced_cov[1, 1] = 0.01
    reduced = reduce(full, reduced_mean=linear["prior_mean"], reduced_cov=reduced_cov)
    refit = variational_laplace(
        lambda t: A @ t, linear["y"], linear["prior_mean"], reduced_cov, hE=math.log(linear["lam"]), hC=0, tol=1e-10
    )
    assert reduced.F == pytest.approx(refit.F, abs=1e-6)
    assert torch.allclose(reduced.mean, refit.mean, atol=1e-7)


def test_save_load_round_trip(linear, tmp_path):
    post = _fit(linear)
    path = post.save(tmp_path / "fit")
    assert path.suffix == ".npz" and not list(tmp_path.glob("*.partial*"))
    back = Posterior.load(path)
    for name in ("mean", "cov", "prior_mean", "prior_cov", "noise_log_precision", "data", "predicted"):
        assert torch.equal(getattr(back, name), getattr(post, name)), name
    assert (back.F, back.L, back.status, back.iterations, back.labels) == (
        post.F,
        post.L,
        post.status,
        post.iterations,
        post.labels,
    )
    assert back.trace == post.trace
    assert back.summary() == post.summary()


def test_summary_reports_credible_intervals(linear):
    post = _fit(linear, labels=["a", "b", "c", "d"])
    text = post.summary(level=0.9)
    lo, hi = post.credible_interval(0.9)
    assert "90% CI" in text and "a " in text
    assert float(hi[0] - lo[0]) == pytest.approx(2 * 1.6448536 * math.sqrt(float(linear["cov"][0, 0])), rel=1e-6)
    assert post.explained_variance == pytest.approx(
        1
        - float(((linear["y"] - linear["A"] @ post.mean) ** 2).sum() / ((linear["y"] - linear["y"].mean()) ** 2).sum()),
        abs=1e-10,
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"prior_cov": torch.ones(3)}, "prior_cov"),
        ({"prior_cov": -torch.eye(4, dtype=F64)}, "prior_cov"),
        ({"y": torch.tensor([float("nan")] * 40)}, "'y'"),
        ({"noise": "cauchy"}, "noise"),
        ({"beta": 1.5}, "beta"),
        ({"precision_components": torch.eye(3)}, "precision_components"),
        ({"max_iter": 0}, "max_iter"),
        ({"jacobian": "symbolic"}, "jacobian"),
    ],
)
def test_bad_input_names_the_argument(linear, options, match):
    A = linear["A"]
    args = {"y": linear["y"], "prior_mean": linear["prior_mean"], "prior_cov": linear["prior_cov"]}
    args.update({k: options.pop(k) for k in list(options) if k in args})
    with pytest.raises(ValueError, match=match):
        variational_laplace(lambda t: A @ t, args["y"], args["prior_mean"], args["prior_cov"], **options)


def test_load_rejects_other_files(tmp_path):
    other = tmp_path / "x.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved"):
        Posterior.load(other)
    with pytest.raises(FileNotFoundError, match="path"):
        Posterior.load(tmp_path / "missing.npz")

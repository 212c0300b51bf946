"""Parametric empirical Bayes: exact against the stacked linear-Gaussian hierarchy, and recovery of a
planted group difference."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tests.unit.inference.test_bmr import linear_gaussian
from thalia.inference.peb import peb, peb_bmr

DT = torch.float64
Z90 = 1.6448536269514722
LABELS = ("a", "b", "c")


def simulate(n_per_group, seed, group_effect=(0.5, 0.0, 0.0), between_sd=0.1, n_obs=10, noise_sd=0.2):
    """First-level linear-Gaussian posteriors (closed form) of two groups, and the design X = [1, ±½]."""
    gen = torch.Generator().manual_seed(seed)
    group = torch.cat([-0.5 * torch.ones(n_per_group, dtype=DT), 0.5 * torch.ones(n_per_group, dtype=DT)])
    group_mean = torch.tensor([0.2, -0.3, 0.4], dtype=DT)
    prior_mean, prior_cov = torch.zeros(3, dtype=DT), torch.eye(3, dtype=DT)
    subjects = []
    for g in group:
        theta = group_mean + g * torch.tensor(group_effect, dtype=DT)
        theta = theta + between_sd * torch.randn(3, generator=gen, dtype=DT)
        A = torch.randn(n_obs, 3, generator=gen, dtype=DT)
        y = A @ theta + noise_sd * torch.randn(n_obs, generator=gen, dtype=DT)
        post = linear_gaussian(A, y, noise_sd**2, prior_mean, prior_cov, LABELS)
        subjects.append(SimpleNamespace(post=post, A=A, y=y))
    X = torch.stack([torch.ones_like(group), group], dim=1)
    return subjects, X, noise_sd


def brute_force(subjects, X, noise_sd, gamma, selected=(0, 1)):
    """log p(y | γ) and the posterior of β given γ from the stacked Gaussian of all subjects' data,
    under the documented PEB model (prior variances 1, β ~ N(β₀, I), Σ(γ) = diag(exp(−γ)/16))."""
    n_cov, p, P = X.shape[1], len(selected), 3
    rest = [j for j in range(P) if j not in selected]
    beta0 = torch.zeros(n_cov * p, dtype=DT)  # first-level prior mean (0) for the constant column too
    beta_cov = torch.eye(n_cov * p, dtype=DT)
    between = torch.diag(torch.exp(-gamma) / 16)
    G, blocks, ys = [], [], []
    for i, s in enumerate(subjects):
        A_s, A_o = s.A[:, list(selected)], s.A[:, rest]
        G.append(A_s @ torch.kron(X[i : i + 1], torch.eye(p, dtype=DT)))
        blocks.append(A_s @ between @ A_s.T + A_o @ A_o.T + noise_sd**2 * torch.eye(s.A.shape[0], dtype=DT))
        ys.append(s.y)
    G, B, y = torch.cat(G), torch.block_diag(*blocks), torch.cat(ys)
    resid = y - G @ beta0
    cov = G @ beta_cov @ G.T + B
    log_ev = -0.5 * (resid @ torch.linalg.solve(cov, resid) + torch.logdet(cov) + y.shape[0] * math.log(2 * math.pi))
    precision = torch.linalg.inv(beta_cov) + G.T @ torch.linalg.solve(B, G)
    Cp = torch.linalg.inv(precision)
    Ep = beta0 + Cp @ G.T @ torch.linalg.solve(B, resid)
    return float(log_ev), Ep, Cp


def log_hyperprior(gamma):
    v = 1 / 16
    return float(-0.5 * (gamma**2).sum() / v - 0.5 * gamma.shape[0] * math.log(2 * math.pi * v))


@pytest.fixture(scope="module")
def small():
    subjects, X, noise_sd = simulate(3, seed=5)
    result = peb([s.post for s in subjects], X, parameters=["a", "b"])
    return subjects, X, noise_sd, result


def test_peb_is_exact_given_the_hyperparameters(small):
    subjects, X, noise_sd, result = small
    log_ev, Ep, Cp = brute_force(subjects, X, noise_sd, result.Eh)
    laplace = 0.5 * float(torch.logdet(2 * math.pi * result.Ch))
    assert result.F - laplace - log_hyperprior(result.Eh) == pytest.approx(log_ev, abs=1e-8)
    assert torch.allclose(result.Ep.reshape(-1), Ep, atol=1e-9, rtol=0)
    assert torch.allclose(result.Cp, Cp, atol=1e-9, rtol=0)


def test_peb_hyperparameters_maximise_the_exact_objective(small):
    subjects, X, noise_sd, result = small
    assert result.converged and result.iterations < 20

    def objective(gamma):
        return brute_force(subjects, X, noise_sd, gamma)[0] + log_hyperprior(gamma)

    h = 1e-4
    at_mode = objective(result.Eh)
    for j in range(result.Eh.shape[0]):
        step = torch.zeros_like(result.Eh)
        step[j] = h
        up, down = objective(result.Eh + step), objective(result.Eh - step)
        assert abs(up - down) / (2 * h) < 1e-5  # zero gradient
        curvature = (up - 2 * at_mode + down) / h**2
        assert -1 / curvature == pytest.approx(float(result.Ch[j, j]), rel=0.05)  # Laplace variance (near-diagonal)


def test_subject_posteriors_are_the_empirical_bayes_posteriors(small):
    subjects, X, noise_sd, result = small
    for i, s in enumerate(subjects):
        reduced = result.subject_posteriors[i]
        prior_mean = torch.zeros(3, dtype=DT)
        prior_mean[:2] = X[i] @ result.Ep
        prior_cov = torch.diag(torch.tensor([0.0, 0.0, 1.0], dtype=DT))
        prior_cov[:2, :2] = result.between_cov
        exact = linear_gaussian(s.A, s.y, noise_sd**2, prior_mean, prior_cov)
        assert torch.allclose(reduced.mean, exact.mean, atol=1e-9, rtol=0)
        assert torch.allclose(reduced.cov, exact.cov, atol=1e-9, rtol=0)
        assert reduced.F == pytest.approx(exact.F, abs=1e-8)


@pytest.fixture(scope="module")
def groups():
    subjects, X, _ = simulate(10, seed=2024)
    result = peb([s.post for s in subjects], X, parameters=["a", "b"], covariate_names=("mean", "group"))
    return result, peb_bmr(result)


def test_peb_recovers_the_planted_group_difference(groups):
    result, _ = groups
    assert result.parameter_labels == ("a", "b") and result.covariate_names == ("mean", "group")
    sd = torch.sqrt(torch.diagonal(result.Cp)).reshape(result.Ep.shape)
    low, high = result.Ep - Z90 * sd, result.Ep + Z90 * sd
    assert low[1, 0] < 0.5 < high[1, 0] and low[1, 0] > 0.0  # real effect: covers +0.5, excludes 0
    assert low[1, 1] < 0.0 < high[1, 1]  # null effect: covers 0
    assert low[0, 0] < 0.2 < high[0, 0] and low[0, 1] < -0.3 < high[0, 1]  # group means


def test_peb_bmr_finds_the_real_effect_only(groups):
    result, bmr = groups
    assert bmr.search == "exhaustive" and bmr.n_models == 16
    assert float(bmr.Pp[1, 0]) > 0.95
    assert float(bmr.Pp[1, 1]) < 0.5
    assert bool(bmr.best_present[1, 0]) and not bool(bmr.best_present[1, 1])
    assert float(bmr.F_off[1, 0]) < result.F - 3.0  # switching the real effect off costs evidence
    assert abs(float(bmr.Ep[1, 1])) < abs(float(result.Ep[1, 1]))  # BMA shrinks the null effect
    table = bmr.summary().splitlines()
    row = next(line for line in table if line.startswith("group: a"))
    assert f"{float(result.Ep[1, 0]):.4g}" in row and f"{float(bmr.Pp[1, 0]):.3f}" in row


def test_peb_bmr_greedy_search_agrees_with_exhaustive(groups):
    result, bmr = groups
    greedy = peb_bmr(result, max_exhaustive=2)
    assert greedy.search == "greedy"
    assert torch.equal(greedy.best_present, bmr.best_present)
    assert float(greedy.Pp[1, 0]) > 0.95 and float(greedy.Pp[1, 1]) < 0.5


def test_peb_rejects_bad_input():
    subjects, X, _ = simulate(2, seed=1)
    posts = [s.post for s in subjects]
    with pytest.raises(ValueError, match=r"Invalid shape for 'X': expected \(n_subjects, n_covariates\) = \(4, k\)"):
        peb(posts, X[:3])
    with pytest.raises(ValueError, match=r"Invalid shape for 'X'.*got \(4,\)"):
        peb(posts, X[:, 0])
    short = SimpleNamespace(**{k: v[:2] if k in ("mean", "prior_mean") else v for k, v in vars(posts[0]).items()})
    short.cov, short.prior_cov, short.labels = posts[0].cov[:2, :2], posts[0].prior_cov[:2, :2], None
    sizes = r"'posteriors': all must have the same number of parameters, got sizes \[2, 3"
    with pytest.raises(ValueError, match=sizes):
        peb([short] + posts[1:], X)
    with pytest.raises(ValueError, match=r"Invalid value for 'parameters': unknown parameter 'zz'; expected labels"):
        peb(posts, X, parameters=["a", "zz"])
    with pytest.raises(ValueError, match=r"Invalid value for 'parameters': expected parameter indices in 0\.\.2"):
        peb(posts, X, parameters=[0, 3])
    with pytest.raises(ValueError, match=r"Invalid value for 'prior_var_beta': expected a finite number > 0, got -1"):
        peb(posts, X, prior_var_beta=-1)


def test_subject_evidences_add_up_to_the_group_evidence_with_correlated_priors():
    """With a correlated first-level prior, the unselected parameter keeps its prior conditioned on the
    selected ones, so each subject's full-vector BMR evidence equals the marginal one PEB optimises:
    F − Laplace(γ) − log p(γ) = Σᵢ Fᵢ(empirical prior) − ½ dᵀΣ_β⁻¹d − ½ log|Σ_β| + ½ log|C_β|."""
    gen = torch.Generator().manual_seed(3)
    prior_cov = torch.tensor([[1.0, 0.3, 0.4], [0.3, 1.0, -0.2], [0.4, -0.2, 1.0]], dtype=DT)
    prior_mean = torch.tensor([0.1, 0.0, -0.1], dtype=DT)
    posts = []
    for _ in range(6):
        A = torch.randn(8, 3, generator=gen, dtype=DT)
        y = A @ torch.tensor([0.3, -0.2, 0.5], dtype=DT) + 0.3 * torch.randn(8, generator=gen, dtype=DT)
        posts.append(linear_gaussian(A, y, 0.09, prior_mean, prior_cov, LABELS))
    X = torch.stack([torch.ones(6, dtype=DT), torch.linspace(-1, 1, 6, dtype=DT)], dim=1)
    result = peb(posts, X, parameters=[0, 2])
    d = (result.Ep - result.beta_prior_mean).reshape(-1)
    expected = sum(s.F for s in result.subject_posteriors)
    expected -= 0.5 * float(d @ torch.linalg.solve(result.beta_prior_cov, d))
    expected += 0.5 * float(torch.logdet(result.Cp) - torch.logdet(result.beta_prior_cov))
    laplace = 0.5 * float(torch.logdet(2 * math.pi * result.Ch))
    assert result.F - laplace - log_hyperprior(result.Eh) == pytest.approx(expected, abs=1e-8)
    assert torch.allclose(result.beta_prior_mean[0], prior_mean[[0, 2]], atol=1e-15, rtol=0)  # group mean's prior
    assert result.parameter_labels == ("a", "c")

"""Parametric empirical Bayes (PEB): a second-level (between-subject) linear model of first-level parameters.

Friston et al. (2016), "Bayesian model reduction and empirical Bayes for group (DCM) studies"; Zeidman
et al. (2019), "A guide to group effective connectivity analysis, part 2". The equations are written
afresh here; the defaults follow SPM's ``spm_dcm_peb``.

Model. For subjects i = 1..N with first-level posteriors N(μ_i, C_i) under priors N(η_i, Σ_i), the p
selected parameters θ_i obey

    θ_i = (X_i ⊗ I_p) β + ε_i,    ε_i ~ N(0, Σ(γ)),    Σ(γ) = diag(σ²_j · f · exp(−γ_j)),
    β ~ N(β₀, Σ_β),    γ ~ N(0, v_γ I),

with σ²_j the first-level prior variance of parameter j (mean over subjects), f = ``between_var``
(1/16: at γ = 0 the between-subject variance is 1/16 of the prior variance) and v_γ = ``hyper_var``
(1/16). Σ_β = kron(I, diag(``prior_var_beta`` · σ²)) and β₀ is the first-level prior mean for the
effects of a constant column of X (the group mean) and 0 otherwise.

Evidence. Each subject's log evidence under the empirical prior N((X_i ⊗ I)β, Σ(γ)) is F_i + ΔF_i(β, γ)
by Bayesian model reduction of its posterior (the other parameters keep their first-level prior,
conditioned on the selected ones). ΔF_i is exactly quadratic in β, so β is integrated out in closed
form for each γ; γ is optimised by damped Newton steps on the exact gradient and Hessian (autograd)
of log p(y | γ) + log p(γ), and integrated by a Laplace approximation:

    F = log p(y | γ̂) + log p(γ̂) + ½ log|2π C_γ|,
    log p(y | γ) = Σ_i [F_i + ΔF_i(β̂)] − ½ (β̂ − β₀)ᵀ Σ_β⁻¹ (β̂ − β₀) − ½ log|Σ_β| − ½ log|Σ_β⁻¹ + H(γ)|,

where β̂(γ) and (Σ_β⁻¹ + H(γ))⁻¹ are the posterior mean and covariance of β given γ (``Ep``, ``Cp``
are reported at γ̂). For linear-Gaussian first levels every step but the Laplace over γ is exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from thalia._logging import logger
from thalia._validation import as_float_tensor, check_positive_float, check_positive_int
from thalia.inference.bmr import (
    REL_TOL,
    ReducedPosterior,
    as_gaussian,
    label_indices,
    model_probabilities,
    reduce_moments,
    switched_off_prior,
)

Tensor = torch.Tensor

#: z of a two-sided 90% credible interval (the 95th percentile of the standard normal).
Z90 = 1.6448536269514722
#: Largest change of any log-precision γ_j in one Newton step.
MAX_STEP = 4.0


# --------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, eq=False)
class PEBResult:
    """Second-level (group) posterior of a PEB model.

    Attributes
    ----------
    Ep : Tensor, shape (n_covariates, n_params)
        Posterior means of the group effects β (row c: the effect of covariate c on each parameter).
    Cp : Tensor, shape (n_covariates·n_params, n_covariates·n_params)
        Their posterior covariance, in the order of ``Ep.reshape(-1)`` (parameter fastest).
    Eh : Tensor, shape (n_params,)
        Posterior means of the between-subject log-precisions γ.
    Ch : Tensor, shape (n_params, n_params)
        Their posterior covariance.
    F : float
        Free energy (log evidence) of the whole hierarchical model, first levels included (nats).
    covariate_names, parameter_labels : tuple of str
        Names of the rows and columns of ``Ep``.
    parameter_indices : tuple of int
        Indices of the selected parameters in the first-level parameter vectors.
    subject_posteriors : tuple of ReducedPosterior
        Each subject's posterior over all its parameters under the empirical prior at (Ep, Eh), with
        ``F`` the subject's log evidence under that prior.
    converged : bool
        Whether the predicted free-energy gain of a further Newton step fell below ``tol``.
    iterations : int
        Newton iterations over γ.
    X : Tensor, shape (n_subjects, n_covariates)
        The design matrix.
    beta_prior_mean : Tensor, shape (n_covariates, n_params)
    beta_prior_cov : Tensor, shape (n_covariates·n_params, n_covariates·n_params)
    between_cov : Tensor, shape (n_params, n_params)
        Between-subject covariance Σ(Eh) of the random effects.
    """

    Ep: Tensor
    Cp: Tensor
    Eh: Tensor
    Ch: Tensor
    F: float
    covariate_names: tuple[str, ...]
    parameter_labels: tuple[str, ...]
    parameter_indices: tuple[int, ...]
    subject_posteriors: tuple[ReducedPosterior, ...]
    converged: bool
    iterations: int
    X: Tensor
    beta_prior_mean: Tensor
    beta_prior_cov: Tensor
    between_cov: Tensor

    @property
    def effect_names(self) -> tuple[str, ...]:
        """``"covariate: parameter"`` for each entry of ``Ep.reshape(-1)``."""
        return tuple(f"{c}: {p}" for c in self.covariate_names for p in self.parameter_labels)

    def summary(self, bmr: PEBBMRResult | None = None) -> str:
        """A text table of the group effects: posterior mean, 90% credible interval and, given the
        result of :func:`peb_bmr`, the posterior probability Pp that each effect is present and its
        Bayesian-model-averaged mean."""
        mean = self.Ep.reshape(-1)
        sd = torch.sqrt(torch.clamp(torch.diagonal(self.Cp), min=0.0))
        width = max(len("effect"), *(len(name) for name in self.effect_names))
        head = f"{'effect':<{width}}  {'mean':>10}  {'90% CI':^24}"
        head += f"  {'Pp':>6}  {'BMA mean':>10}" if bmr is not None else ""
        lines = [head, "-" * len(head)]
        for k, name in enumerate(self.effect_names):
            low, high = float(mean[k] - Z90 * sd[k]), float(mean[k] + Z90 * sd[k])
            row = f"{name:<{width}}  {float(mean[k]):>10.4g}  [{low:>10.4g}, {high:>10.4g}]"
            if bmr is not None:
                row += f"  {float(bmr.Pp.reshape(-1)[k]):>6.3f}  {float(bmr.Ep.reshape(-1)[k]):>10.4g}"
            lines.append(row)
        lines.append(f"F = {self.F:.4f}   converged = {self.converged} after {self.iterations} iterations")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class PEBBMRResult:
    """Bayesian model reduction over the group effects β of a PEB model.

    Attributes
    ----------
    Pp : Tensor, shape (n_covariates, n_params)
        Posterior probability that each effect is present (non-zero), marginal over the model space.
    Ep : Tensor, shape (n_covariates, n_params)
        Bayesian-model-averaged posterior means.
    Cp : Tensor
        Bayesian-model-averaged posterior covariance (law of total variance), like ``PEBResult.Cp``.
    F_off : Tensor, shape (n_covariates, n_params)
        Free energy of the model with only that effect switched off.
    F_full : float
        Free energy of the full PEB model.
    best_present : Tensor of bool, shape (n_covariates, n_params)
        The effects present in the model of highest evidence.
    n_models : int
        Models evaluated.
    search : str
        ``"exhaustive"`` (all subsets of effects) or ``"greedy"``.
    peb : PEBResult
        The full model.
    """

    Pp: Tensor
    Ep: Tensor
    Cp: Tensor
    F_off: Tensor
    F_full: float
    best_present: Tensor
    n_models: int
    search: str
    peb: PEBResult

    def summary(self) -> str:
        """The PEB model's table with Pp and the BMA means (see :meth:`PEBResult.summary`)."""
        return self.peb.summary(bmr=self)


# --------------------------------------------------------------------------------------------------
# input


class _Subjects(NamedTuple):
    mean: Tensor  # (N, P)
    cov: Tensor  # (N, P, P)
    prior_mean: Tensor  # (N, P)
    prior_cov: Tensor  # (N, P, P)
    F: Tensor  # (N,)
    labels: tuple[str, ...] | None


def _collect(posteriors: Sequence[Any]) -> _Subjects:
    if isinstance(posteriors, str | bytes) or not isinstance(posteriors, Sequence) or len(posteriors) < 1:
        raise ValueError(
            f"Invalid value for 'posteriors': expected a non-empty sequence of posteriors, got {posteriors!r}."
        )
    items = [as_gaussian(post, name=f"posteriors[{i}]") for i, post in enumerate(posteriors)]
    sizes = [item.mean.shape[0] for item in items]
    if len(set(sizes)) > 1:
        raise ValueError(
            f"Invalid value for 'posteriors': all must have the same number of parameters, got sizes {sizes}."
        )
    missing = [i for i, item in enumerate(items) if item.F is None]
    if missing:
        raise ValueError(f"Invalid value for 'posteriors': the free energy F is missing for subjects {missing}.")
    labels = {item.labels for item in items if item.labels is not None}
    if len(labels) > 1:
        raise ValueError("Invalid value for 'posteriors': their 'labels' differ between subjects.")
    return _Subjects(
        torch.stack([item.mean for item in items]),
        torch.stack([item.cov for item in items]),
        torch.stack([item.prior_mean for item in items]),
        torch.stack([item.prior_cov for item in items]),
        torch.tensor([item.F for item in items], dtype=torch.float64, device=items[0].mean.device),
        labels.pop() if labels else None,
    )


def _select(parameters: Any, subjects: _Subjects) -> tuple[int, ...]:
    variances = torch.diagonal(subjects.prior_cov, dim1=-2, dim2=-1)
    free = (variances > REL_TOL * variances.amax(dim=-1, keepdim=True)).all(dim=0)
    n = free.shape[0]
    if parameters is None:
        chosen = tuple(int(i) for i in torch.nonzero(free).reshape(-1))
    else:
        chosen = _parameter_indices(parameters, n, subjects.labels)
    fixed = [i for i in chosen if not bool(free[i])]
    if fixed or not chosen:
        raise ValueError(
            "Invalid value for 'parameters': expected parameters with non-zero prior variance in every subject, "
            f"got {'none' if not chosen else f'fixed ones at indices {fixed}'}."
        )
    return chosen


def _parameter_indices(parameters: Any, n: int, labels: tuple[str, ...] | None) -> tuple[int, ...]:
    items = [parameters] if isinstance(parameters, str) else list(parameters)
    if items and all(isinstance(i, str) for i in items):
        if labels is None:
            raise ValueError("Invalid value for 'parameters': names need posteriors with 'labels'; pass indices.")
        chosen = tuple(label_indices("parameters", items, labels))
    elif all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in items):
        chosen = tuple(int(i) for i in items)
    else:
        raise ValueError(
            f"Invalid value for 'parameters': expected parameter indices in 0..{n - 1} or labels, got {parameters!r}."
        )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"Invalid value for 'parameters': expected distinct parameters, got {parameters!r}.")
    return chosen


def _design(
    X: Any, n_subjects: int, names: Sequence[str] | None, device: torch.device
) -> tuple[Tensor, tuple[str, ...]]:
    design = as_float_tensor("X", X, device=device)
    if design.ndim != 2 or design.shape[0] != n_subjects or design.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for 'X': expected (n_subjects, n_covariates) = ({n_subjects}, k) with k >= 1, "
            f"got {tuple(design.shape)}."
        )
    if names is None:
        names = tuple("mean" if bool((design[:, c] == 1).all()) else f"covariate {c}" for c in range(design.shape[1]))
    names = tuple(str(name) for name in names)
    if len(names) != design.shape[1]:
        raise ValueError(f"Invalid value for 'covariate_names': expected {design.shape[1]} names, got {len(names)}.")
    return design, names


# --------------------------------------------------------------------------------------------------
# the second-level model


class _Model(NamedTuple):
    X: Tensor  # (N, c)
    M: Tensor  # (N, p, p) likelihood precisions P_i − Π_i of the selected parameters
    k: Tensor  # (N, p) P_i μ_i − Π_i η_i
    const: Tensor  # (N,) the parts of ΔF_i that do not depend on the empirical prior, plus F_i
    beta0: Tensor  # (c·p,)
    beta_precision: Tensor  # (c·p, c·p)
    beta_logdet_cov: Tensor  # 0-d
    q_scale: Tensor  # (p,) between-subject precision at γ = 0
    hyper_mean: Tensor  # (p,)
    hyper_var: float


def _inverse_and_logdet(name: str, cov: Tensor) -> tuple[Tensor, Tensor]:
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool(info.any()):
        bad = int(torch.nonzero(info)[0])
        raise ValueError(
            f"Invalid value for 'posteriors[{bad}].{name}': expected a positive definite covariance of the selected "
            "parameters."
        )
    return torch.cholesky_inverse(factor), 2.0 * torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(-1)


def _build(
    subjects: _Subjects, chosen: tuple[int, ...], X: Tensor, prior_var_beta: float, between_var: float, hyper_var: float
) -> _Model:
    idx = list(chosen)
    mu, eta = subjects.mean[:, idx], subjects.prior_mean[:, idx]
    precision, logdet_cov = _inverse_and_logdet("cov", subjects.cov[:, idx][:, :, idx])
    prior_precision, logdet_prior = _inverse_and_logdet("prior_cov", subjects.prior_cov[:, idx][:, :, idx])
    quad = torch.einsum("ni,nij,nj->n", mu, precision, mu) - torch.einsum("ni,nij,nj->n", eta, prior_precision, eta)
    const = subjects.F + 0.5 * (logdet_prior - logdet_cov) - 0.5 * quad
    k = torch.einsum("nij,nj->ni", precision, mu) - torch.einsum("nij,nj->ni", prior_precision, eta)
    sigma2 = torch.diagonal(subjects.prior_cov[:, idx][:, :, idx], dim1=-2, dim2=-1).mean(0)
    n_cov, p = X.shape[1], len(idx)
    beta0 = torch.zeros(n_cov, p, dtype=X.dtype, device=X.device)
    for c in range(n_cov):
        if bool((X[:, c] == 1).all()):
            beta0[c] = eta.mean(0)
    beta_var = (prior_var_beta * sigma2).repeat(n_cov)
    return _Model(
        X,
        precision - prior_precision,
        k,
        const,
        beta0.reshape(-1),
        torch.diag(1.0 / beta_var),
        torch.log(beta_var).sum(),
        1.0 / (between_var * sigma2),
        torch.zeros(p, dtype=X.dtype, device=X.device),
        hyper_var,
    )


class _Evaluation(NamedTuple):
    objective: Tensor  # log p(y | γ) + log p(γ)
    beta: Tensor  # (c·p,) posterior mean of β given γ
    beta_cov: Tensor  # (c·p, c·p)


def _evaluate(gamma: Tensor, model: _Model) -> _Evaluation | None:
    """log p(y | γ) + log p(γ) with β integrated out exactly; None where a reduced posterior is improper."""
    n_cov, p = model.X.shape[1], gamma.shape[0]
    pi_r = model.q_scale * torch.exp(gamma)
    factor, info = torch.linalg.cholesky_ex(model.M + torch.diag(pi_r))
    if bool(info.any()):
        return None
    reduced_cov = torch.cholesky_inverse(factor)  # (N, p, p) C_r,i
    b0 = model.X @ model.beta0.reshape(n_cov, p)
    grad = pi_r * (torch.einsum("nij,nj->ni", reduced_cov, model.k + pi_r * b0) - b0)
    curvature = torch.diag(pi_r) - pi_r[:, None] * reduced_cov * pi_r[None, :]  # (N, p, p)
    hessian = torch.einsum("na,nb,nij->aibj", model.X, model.X, curvature).reshape(n_cov * p, n_cov * p)
    beta_factor, info = torch.linalg.cholesky_ex(model.beta_precision + hessian)
    if bool(info):
        return None
    beta = model.beta0 + torch.cholesky_solve((model.X.T @ grad).reshape(-1, 1), beta_factor)[:, 0]
    b = model.X @ beta.reshape(n_cov, p)
    w = model.k + pi_r * b
    dF = (
        0.5 * torch.log(pi_r).sum()
        - torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(-1)
        - 0.5 * (pi_r * b * b).sum(-1)
        + 0.5 * torch.einsum("ni,nij,nj->n", w, reduced_cov, w)
    )
    d = beta - model.beta0
    evidence = (model.const + dF).sum() - 0.5 * d @ model.beta_precision @ d - 0.5 * model.beta_logdet_cov
    evidence = evidence - torch.log(torch.diagonal(beta_factor)).sum()
    log_prior = -0.5 * (((gamma - model.hyper_mean) ** 2) / model.hyper_var).sum()
    log_prior = log_prior - 0.5 * p * math.log(2 * math.pi * model.hyper_var)
    return _Evaluation(evidence + log_prior, beta, torch.cholesky_inverse(beta_factor))


def _derivatives(gamma: Tensor, model: _Model) -> tuple[Tensor, Tensor]:
    def objective(g: Tensor) -> Tensor:
        out = _evaluate(g, model)
        return out.objective if out is not None else torch.full((), float("nan"), dtype=g.dtype, device=g.device)

    grad = torch.autograd.functional.jacobian(objective, gamma)
    hessian = torch.autograd.functional.hessian(objective, gamma)
    return grad, (hessian + hessian.T) / 2


def _newton_step(grad: Tensor, hessian: Tensor, damping: float) -> Tensor:
    """Damped Newton (Levenberg–Marquardt) ascent step on a concave-ish objective."""
    neg = -hessian
    eig = torch.linalg.eigvalsh(neg)
    shift = damping * max(float(eig.abs().max()), 1.0) + max(0.0, -float(eig[0]))
    eye = torch.eye(grad.shape[0], dtype=grad.dtype, device=grad.device)
    step = torch.linalg.solve(neg + shift * eye, grad)
    largest = float(step.abs().max())
    return step * (MAX_STEP / largest) if largest > MAX_STEP else step


def _newton_decrement(grad: Tensor, hessian: Tensor) -> float:
    """½ gᵀ(−H)⁻¹g, the gain a full Newton step predicts; inf where −H is not positive definite."""
    factor, info = torch.linalg.cholesky_ex(-hessian)
    if int(info):
        return math.inf
    return 0.5 * float(grad @ torch.cholesky_solve(grad[:, None], factor)[:, 0])


def _optimise(model: _Model, max_iter: int, tol: float) -> tuple[Tensor, _Evaluation, Tensor, int, bool]:
    gamma = model.hyper_mean.clone()
    current = _evaluate(gamma, model)
    if current is None:
        raise ValueError(
            "Invalid value for 'posteriors': a first-level posterior is improper under the empirical prior at the "
            "hyperprior mean (posterior precision below prior precision)."
        )
    damping, converged, iteration = 0.0, False, 0
    for iteration in range(1, max_iter + 1):
        grad, hessian = _derivatives(gamma, model)
        if _newton_decrement(grad, hessian) < tol:  # converged: polish with one full Newton step
            gamma, current, _ = _try_step(gamma, current, grad, hessian, 0.0, model)
            converged = True
            break
        gamma, current, damping = _try_step(gamma, current, grad, hessian, damping, model)
        if damping > 1e8:
            break
        logger.debug("PEB iteration %d: objective %.6f, damping %.3g", iteration, float(current.objective), damping)
    grad, hessian = _derivatives(gamma, model)
    return gamma, current, hessian, iteration, converged


def _try_step(
    gamma: Tensor, current: _Evaluation, grad: Tensor, hessian: Tensor, damping: float, model: _Model
) -> tuple[Tensor, _Evaluation, float]:
    """One damped Newton step: accepted (less damping) if it raises the objective, else more damping."""
    candidate = gamma + _newton_step(grad, hessian, damping)
    trial = _evaluate(candidate, model)
    if trial is not None and float(trial.objective) >= float(current.objective):
        return candidate, trial, damping / 10 if damping > 1e-6 else 0.0
    return gamma, current, max(damping * 10, 1e-3)


def _laplace_cov(hessian: Tensor) -> Tensor:
    """(−H)⁻¹, with eigenvalues of −H floored at a small positive value where the mode is not strict."""
    eig, vec = torch.linalg.eigh(-hessian)
    if float(eig[0]) <= 0:
        logger.warning("PEB: the free-energy Hessian over the log-precisions is not negative definite; floored.")
    eig = torch.clamp(eig, min=1e-8 * max(float(eig.abs().max()), 1.0))
    return (vec / eig) @ vec.T


def _empirical_prior(
    subjects: _Subjects, i: int, chosen: tuple[int, ...], b: Tensor, between: Tensor
) -> tuple[Tensor, Tensor]:
    """Full-vector empirical prior of subject i: N(b, Σ(γ)) on the selected parameters, the first-level
    prior of the others conditioned on the selected ones (so only the selected marginal changes)."""
    eta, sigma = subjects.prior_mean[i], subjects.prior_cov[i]
    sel = torch.tensor(chosen)
    rest = torch.tensor([j for j in range(eta.shape[0]) if j not in chosen], dtype=torch.long)
    gain = torch.linalg.solve(sigma[sel][:, sel], sigma[sel][:, rest]).T  # Σ_os Σ_ss⁻¹
    mean, cov = eta.clone(), torch.zeros_like(sigma)
    mean[sel] = b
    mean[rest] = eta[rest] + gain @ (b - eta[sel])
    cov[sel[:, None], sel] = between
    cov[rest[:, None], sel] = gain @ between
    cov[sel[:, None], rest] = (gain @ between).T
    cond = sigma[rest][:, rest] - gain @ sigma[sel][:, rest] + gain @ between @ gain.T
    cov[rest[:, None], rest] = (cond + cond.T) / 2
    return mean, cov


def _subject_posteriors(
    subjects: _Subjects, chosen: tuple[int, ...], X: Tensor, Ep: Tensor, between: Tensor
) -> tuple[ReducedPosterior, ...]:
    out = []
    for i in range(X.shape[0]):
        r_mean, r_cov = _empirical_prior(subjects, i, chosen, X[i] @ Ep, between)
        mean, cov, dF = reduce_moments(
            subjects.mean[i], subjects.cov[i], subjects.prior_mean[i], subjects.prior_cov[i], r_mean, r_cov
        )
        F = float(subjects.F[i]) + float(dF)
        out.append(ReducedPosterior(mean, cov, float(dF), F, r_mean, r_cov, subjects.labels))
    return tuple(out)


def peb(
    posteriors: Sequence[Any],
    X: Any,
    *,
    parameters: Sequence[int] | Sequence[str] | None = None,
    covariate_names: Sequence[str] | None = None,
    prior_var_beta: float = 1.0,
    between_var: float = 1 / 16,
    hyper_var: float = 1 / 16,
    max_iter: int = 64,
    tol: float = 1e-6,
) -> PEBResult:
    """Parametric empirical Bayes: fit a between-subject linear model to first-level posteriors.

    Parameters
    ----------
    posteriors : sequence of posterior-like
        One per subject, each with ``mean``, ``cov``, ``prior_mean``, ``prior_cov``, ``F`` and optionally
        ``labels`` (see :func:`thalia.inference.bmr.reduce`); all with the same number of parameters.
    X : array_like, shape (n_subjects, n_covariates)
        Between-subject design matrix. A column of ones models the group mean (its effects get the
        first-level prior mean as prior mean); centre the other covariates so that it stays the mean.
    parameters : sequence of int or of str, optional
        The first-level parameters that enter the second level, by index or label (default: every
        parameter with non-zero prior variance in all subjects).
    covariate_names : sequence of str, optional
        Names of the columns of ``X`` (default ``"mean"`` for a column of ones, ``"covariate c"`` else).
    prior_var_beta : float
        Prior variance of each group effect relative to the first-level prior variance of its
        parameter (1: SPM's default, the group effects have the first-level prior variance).
    between_var : float
        Between-subject variance at γ = 0 relative to the first-level prior variance (1/16, SPM's
        within:between precision ratio of 16). One log-precision γ_j per parameter (SPM's "All").
    hyper_var : float
        Prior variance of each log-precision γ_j (prior mean 0), 1/16 as in SPM.
    max_iter : int
        Most Newton iterations over γ.
    tol : float
        Convergence when a full Newton step predicts a free-energy gain below ``tol`` (nats).

    Returns
    -------
    PEBResult
    """
    subjects = _collect(posteriors)
    design, names = _design(X, subjects.mean.shape[0], covariate_names, subjects.mean.device)
    chosen = _select(parameters, subjects)
    for name, value in (("prior_var_beta", prior_var_beta), ("between_var", between_var), ("hyper_var", hyper_var)):
        check_positive_float(name, value)
    check_positive_int("max_iter", max_iter)
    check_positive_float("tol", tol)
    model = _build(subjects, chosen, design, prior_var_beta, between_var, hyper_var)
    gamma, best, hessian, iterations, converged = _optimise(model, max_iter, tol)
    if not converged:
        logger.warning("PEB did not converge in %d iterations.", iterations)
    Ch = _laplace_cov(hessian)
    F = float(best.objective) + 0.5 * float(torch.logdet(2 * math.pi * Ch))
    Ep = best.beta.reshape(design.shape[1], len(chosen)).detach()
    between = torch.diag(1.0 / (model.q_scale * torch.exp(gamma))).detach()
    labels = subjects.labels or tuple(f"theta[{j}]" for j in range(subjects.mean.shape[1]))
    return PEBResult(
        Ep=Ep,
        Cp=best.beta_cov.detach(),
        Eh=gamma.detach(),
        Ch=Ch,
        F=F,
        covariate_names=names,
        parameter_labels=tuple(labels[j] for j in chosen),
        parameter_indices=chosen,
        subject_posteriors=_subject_posteriors(subjects, chosen, design, Ep, between),
        converged=converged,
        iterations=iterations,
        X=design,
        beta_prior_mean=model.beta0.reshape(design.shape[1], len(chosen)),
        beta_prior_cov=torch.linalg.inv(model.beta_precision),
        between_cov=between,
    )


# --------------------------------------------------------------------------------------------------
# Bayesian model reduction over the group effects


class _ModelSpace:
    """Reduced second-level models by the set of effects switched off (each fixed at its prior mean)."""

    def __init__(self, result: PEBResult) -> None:
        self.mean = result.Ep.reshape(-1)
        self.cov = result.Cp
        self.prior_mean = result.beta_prior_mean.reshape(-1)
        self.prior_cov = result.beta_prior_cov
        self.models: dict[tuple[int, ...], tuple[Tensor, Tensor, float]] = {}

    def evaluate(self, off: tuple[int, ...]) -> float:
        off = tuple(sorted(off))
        if off not in self.models:
            mask = torch.zeros(self.mean.shape[0], dtype=torch.bool)
            mask[list(off)] = True
            r_cov = switched_off_prior(self.prior_cov, mask)
            mean, cov, dF = reduce_moments(self.mean, self.cov, self.prior_mean, self.prior_cov, self.prior_mean, r_cov)
            self.models[off] = (mean, cov, float(dF))
        return self.models[off][2]


def _greedy(space: _ModelSpace, n_effects: int, max_exhaustive: int) -> None:
    """Move to the best model among all subsets of the ``max_exhaustive`` effects with the least evidence."""
    off: tuple[int, ...] = ()
    for _ in range(n_effects):
        candidates = [j for j in range(n_effects) if j not in off]
        candidates.sort(key=lambda j: -space.evaluate(off + (j,)))
        search = candidates[:max_exhaustive]
        for subset in itertools.product((False, True), repeat=len(search)):
            space.evaluate(off + tuple(j for j, s in zip(search, subset, strict=True) if s))
        best = max(space.models, key=lambda key: space.models[key][2])
        if best == tuple(sorted(off)):
            return
        off = best


def peb_bmr(result: PEBResult, *, max_exhaustive: int = 10) -> PEBBMRResult:
    """Bayesian model reduction over the group effects of a PEB model.

    Each reduced model switches off a set of effects (prior variance 0, fixed at their prior mean:
    0, or the first-level prior mean for group-mean effects) and is scored by :mod:`bmr` on the
    second-level posterior N(Ep, Cp) given the hyperparameters at Eh (exact for that Gaussian).

    Parameters
    ----------
    result : PEBResult
    max_exhaustive : int
        With at most this many effects, all 2^K subsets are scored (exhaustive search); with more, a
        greedy search: from the full model, repeatedly score all subsets of the ``max_exhaustive``
        effects whose single removal costs least, and move to the best model found, until it stops
        changing (similar in spirit to SPM's ``spm_dcm_bmr_all``).

    Returns
    -------
    PEBBMRResult
        ``Pp``: posterior probability that each effect is present, summed over all scored models
        (uniform prior over them); ``Ep``/``Cp``: the Bayesian model average; ``F_off``: free energy with
        each effect alone switched off.
    """
    if not isinstance(result, PEBResult):
        raise ValueError(f"Invalid value for 'result': expected a PEBResult from peb(), got {type(result).__name__}.")
    check_positive_int("max_exhaustive", max_exhaustive)
    space = _ModelSpace(result)
    n_effects = space.mean.shape[0]
    F_off = torch.tensor([result.F + space.evaluate((j,)) for j in range(n_effects)], dtype=torch.float64)
    F_off = F_off.to(space.mean.device)
    if n_effects <= max_exhaustive:
        for subset in itertools.product((False, True), repeat=n_effects):
            space.evaluate(tuple(j for j in range(n_effects) if subset[j]))
        search = "exhaustive"
    else:
        _greedy(space, n_effects, max_exhaustive)
        search = "greedy"
    return _average(space, result, F_off, search)


def _average(space: _ModelSpace, result: PEBResult, F_off: Tensor, search: str) -> PEBBMRResult:
    keys = list(space.models)
    probs = model_probabilities([space.models[key][2] for key in keys]).to(space.mean.device)
    n_effects = space.mean.shape[0]
    present = torch.ones(len(keys), n_effects, dtype=torch.float64, device=probs.device)
    for m, key in enumerate(keys):
        present[m, list(key)] = 0.0
    means = torch.stack([space.models[key][0] for key in keys])
    covs = torch.stack([space.models[key][1] for key in keys])
    Ep = probs @ means
    second = torch.einsum("m,mij->ij", probs, covs + means[:, :, None] * means[:, None, :])
    shape = result.Ep.shape
    best = keys[int(torch.argmax(probs))]
    best_present = torch.ones(n_effects, dtype=torch.bool, device=probs.device)
    best_present[list(best)] = False
    return PEBBMRResult(
        Pp=(probs @ present).reshape(shape),
        Ep=Ep.reshape(shape),
        Cp=second - torch.outer(Ep, Ep),
        F_off=F_off.reshape(shape),
        F_full=result.F,
        best_present=best_present.reshape(shape),
        n_models=len(keys),
        search=search,
        peb=result,
    )

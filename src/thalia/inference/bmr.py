"""Bayesian model reduction (BMR) of Gaussian (Laplace) posteriors.

A model inverted under a prior N(η, Σ) with posterior N(μ, C) and log evidence F also gives, in
closed form, the posterior and the evidence under any *reduced* prior N(η_r, Σ_r) with the same
likelihood (Friston & Penny 2011; Friston et al. 2016). With P = C⁻¹, Π = Σ⁻¹, Π_r = Σ_r⁻¹:

    P_r = P + Π_r − Π,    μ_r = P_r⁻¹ (Pμ + Π_r η_r − Πη),
    ΔF = ½ (log|Π_r| − log|Π| + log|P| − log|P_r|) − ½ (μᵀPμ + η_rᵀΠ_rη_r − ηᵀΠη − μ_rᵀP_rμ_r).

The result is exact when the likelihood is Gaussian in the parameters (a linear-Gaussian model) and
inherits the Laplace approximation otherwise.

Zero prior variances are handled without inverting a singular matrix: the full model's free
parameters are the eigen-directions of Σ with variance above ``REL_TOL`` times the largest (fixed
directions stay at their prior mean), and a reduced prior that fixes a direction (variance exactly 0,
"switching a parameter off") is integrated as a point mass there. Writing the reduced prior on the
free subspace as x = m + W z, z ~ N(0, diag ρ), the evidence ratio ∫ q(x)/p(x) p̃(x) dx is a Gaussian
integral in z alone, computed in the scaled form I + ρ^½ Wᵀ(P − Π)W ρ^½ that tends smoothly to the
point-mass result as ρ → 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from thalia._validation import as_float_tensor

Tensor = torch.Tensor

#: Directions of a prior covariance with variance at or below REL_TOL × its largest are fixed.
REL_TOL = 1e-12
#: Largest relative asymmetry of a covariance matrix accepted (it is then symmetrised).
SYMMETRY_TOL = 1e-6
#: Most negative eigenvalue, relative to the largest, accepted in a covariance matrix.
PSD_TOL = 1e-10
#: Name of the unreduced model in :func:`compare`'s results.
FULL_MODEL = "full"


@dataclass(frozen=True, eq=False)
class ReducedPosterior:
    """Posterior and log evidence of a model under a reduced prior.

    Attributes
    ----------
    mean : Tensor, shape (P,)
        Reduced posterior mean.
    cov : Tensor, shape (P, P)
        Reduced posterior covariance (zero rows and columns for fixed parameters).
    dF : float
        Log evidence of the reduced model minus that of the full model (nats).
    F : float or None
        Log evidence (free energy) of the reduced model, ``F_full + dF``; None if ``F_full`` is unknown.
    prior_mean : Tensor, shape (P,)
        The reduced prior mean.
    prior_cov : Tensor, shape (P, P)
        The reduced prior covariance.
    labels : tuple of str or None
        Parameter labels, carried over from the full posterior.
    """

    mean: Tensor
    cov: Tensor
    dF: float
    F: float | None
    prior_mean: Tensor
    prior_cov: Tensor
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class ModelComparison:
    """Reduced models of one full model and their posterior probabilities (uniform model prior).

    Attributes
    ----------
    models : dict of str to ReducedPosterior
        Every model by name, the unreduced one first under ``"full"`` (with ``dF = 0``).
    dF : dict of str to float
        Log evidence of each model relative to the full model (nats).
    probabilities : dict of str to float
        Posterior model probabilities, the softmax of ``dF``; they sum to 1.
    """

    models: dict[str, ReducedPosterior]
    dF: dict[str, float]
    probabilities: dict[str, float]

    @property
    def best(self) -> str:
        """Name of the model with the highest posterior probability."""
        return max(self.probabilities, key=self.probabilities.__getitem__)


class _Gaussian(NamedTuple):
    mean: Tensor
    cov: Tensor
    prior_mean: Tensor
    prior_cov: Tensor
    F: float | None
    labels: tuple[str, ...] | None


# --------------------------------------------------------------------------------------------------
# validation


def check_covariance(name: str, value: Any, n: int, device: torch.device | str | None = None) -> Tensor:
    """A finite, symmetric, positive semi-definite (n, n) float64 tensor, or a ValueError naming ``name``."""
    cov = as_float_tensor(name, value, (n, n), device=device)
    scale = float(cov.abs().max()) if cov.numel() else 0.0
    asym = float((cov - cov.T).abs().max()) if cov.numel() else 0.0
    if asym > SYMMETRY_TOL * max(scale, 1e-300):
        raise ValueError(
            f"Invalid value for {name!r}: expected a symmetric covariance matrix, got an asymmetry of {asym:.3g} "
            f"(largest entry {scale:.3g})."
        )
    cov = (cov + cov.T) / 2
    if n:
        eig = torch.linalg.eigvalsh(cov)
        if float(eig[0]) < -PSD_TOL * max(float(eig.abs().max()), 1e-300):
            raise ValueError(
                f"Invalid value for {name!r}: expected a positive semi-definite covariance matrix, "
                f"got an eigenvalue of {float(eig[0]):.3g}."
            )
    return cov


def _check_F(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"Invalid value for {name!r}: expected a finite number or None, got {value!r}.") from err
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"Invalid value for {name!r}: expected a finite number or None, got {value!r}.")
    return number


def _check_labels(name: str, labels: Any, n: int) -> tuple[str, ...] | None:
    if labels is None:
        return None
    labels = tuple(str(label) for label in labels)
    if len(labels) != n:
        raise ValueError(f"Invalid value for {name!r}: expected {n} labels, got {len(labels)}.")
    return labels


def as_gaussian(
    posterior: Any = None,
    *,
    mean: Any = None,
    cov: Any = None,
    prior_mean: Any = None,
    prior_cov: Any = None,
    F: Any = None,
    labels: Any = None,
    name: str = "posterior",
) -> _Gaussian:
    """Validated prior and posterior moments from a posterior-like object or from explicit arrays.

    A posterior-like object has attributes ``mean`` (P,), ``cov`` (P, P), ``prior_mean`` (P,),
    ``prior_cov`` (P, P), ``F`` and optionally ``labels``. Passing both the object and an explicit
    value of the same moment raises a ValueError.
    """
    explicit = {"mean": mean, "cov": cov, "prior_mean": prior_mean, "prior_cov": prior_cov, "F": F, "labels": labels}
    if posterior is not None:
        clash = [key for key, value in explicit.items() if value is not None]
        if clash:
            raise ValueError(
                f"Invalid arguments: pass either {name!r} or explicit {', '.join(repr(c) for c in clash)}, not both."
            )
        values = {key: getattr(posterior, key, None) for key in explicit}
        prefix = f"{name}."
    else:
        values, prefix = explicit, ""
    missing = [key for key in ("mean", "cov", "prior_mean", "prior_cov") if values[key] is None]
    if missing:
        raise ValueError(
            f"Missing {', '.join(repr(prefix + m) for m in missing)}: pass a posterior-like object as {name!r} "
            "or the arrays 'mean', 'cov', 'prior_mean' and 'prior_cov'."
        )
    mu = as_float_tensor(prefix + "mean", values["mean"])
    if mu.ndim != 1:
        raise ValueError(f"Invalid shape for {prefix + 'mean'!r}: expected (P,), got {tuple(mu.shape)}.")
    n = mu.shape[0]
    return _Gaussian(
        mu,
        check_covariance(prefix + "cov", values["cov"], n),
        as_float_tensor(prefix + "prior_mean", values["prior_mean"], (n,)),
        check_covariance(prefix + "prior_cov", values["prior_cov"], n),
        _check_F(prefix + "F", values["F"]),
        _check_labels(prefix + "labels", values["labels"], n),
    )


# --------------------------------------------------------------------------------------------------
# the reduction


def _largest_variance(cov: Tensor) -> float:
    return float(torch.diagonal(cov).max()) if cov.numel() else 0.0


def _support(cov: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Orthonormal basis (n, k) of the directions of ``cov`` with variance > REL_TOL·scale, and those variances.

    A diagonal ``cov`` keeps its coordinate axes (so fixed parameters get exact zeros).
    """
    n = cov.shape[0]
    if not bool((cov - torch.diag(torch.diagonal(cov))).any()):
        var = torch.diagonal(cov)
        keep = var > REL_TOL * scale
        return torch.eye(n, dtype=cov.dtype, device=cov.device)[:, keep], var[keep]
    var, vec = torch.linalg.eigh(cov)
    keep = var > REL_TOL * scale
    return vec[:, keep], var[keep]


def _check_inside(basis: Tensor, shift: Tensor, reduced_cov: Tensor, scale: float) -> None:
    """The reduced prior may only shrink or fix the full prior's free directions, never free a fixed one."""
    outside = reduced_cov - basis @ (basis.T @ reduced_cov @ basis) @ basis.T
    if outside.numel() and float(outside.abs().max()) > REL_TOL * max(scale, 1e-300) * 1e3:
        raise ValueError(
            "Invalid value for 'reduced_cov': it gives prior variance to parameters (directions) that have zero "
            "prior variance in the full model; BMR can shrink or fix parameters, not free fixed ones."
        )
    moved = shift - basis @ (basis.T @ shift)
    if moved.numel() and float(moved.abs().max()) > 1e-9 * max(1.0, float(shift.abs().max())):
        raise ValueError(
            "Invalid value for 'reduced_mean': it moves parameters that have zero prior variance in the full "
            f"model (by up to {float(moved.abs().max()):.3g}); their value is fixed by the full model's prior."
        )


def _cholesky(name: str, matrix: Tensor, what: str) -> Tensor:
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info):
        raise ValueError(f"Invalid value for {name!r}: {what}.")
    return factor


def _half_logdet(factor: Tensor) -> Tensor:
    return torch.log(torch.diagonal(factor)).sum()


def reduce_moments(
    mean: Tensor, cov: Tensor, prior_mean: Tensor, prior_cov: Tensor, reduced_mean: Tensor, reduced_cov: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Reduced posterior mean (P,), covariance (P, P) and ΔF (0-d) from validated float64 tensors.

    The arithmetic core of :func:`reduce` (no input checks beyond the ones that need the algebra).
    """
    scale = _largest_variance(prior_cov)
    basis, variances = _support(prior_cov, scale)
    _check_inside(basis, reduced_mean - prior_mean, reduced_cov, scale)
    x = basis.T @ (mean - prior_mean)
    cov_chol = _cholesky(
        "cov", basis.T @ cov @ basis, "the posterior covariance is singular on the parameters with prior variance"
    )
    precision = torch.cholesky_inverse(cov_chol)
    likelihood = precision - torch.diag(1.0 / variances)  # P − Π
    m = basis.T @ (reduced_mean - prior_mean)
    # log of q(x)/p(x) at x = m, up to the Gaussian in z below (c1 in the module notes)
    constant = 0.5 * torch.log(variances).sum() - _half_logdet(cov_chol)
    constant = constant - 0.5 * (m - x) @ precision @ (m - x) + 0.5 * (m / variances) @ m
    directions, rho = _support(basis.T @ reduced_cov @ basis, scale)
    z_mean, z_cov, dF = _integrate_reduced(directions, rho, likelihood, precision @ x - likelihood @ m, constant)
    x_reduced = m + directions @ z_mean
    cov_reduced = basis @ (directions @ z_cov @ directions.T) @ basis.T
    return mean + basis @ (x_reduced - x), (cov_reduced + cov_reduced.T) / 2, dF


def _integrate_reduced(
    directions: Tensor, rho: Tensor, likelihood: Tensor, linear: Tensor, constant: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """∫ exp(constant − ½zᵀHz + zᵀg) N(z; 0, diag ρ) dz with H = WᵀLW, g = Wᵀ·linear; posterior of z."""
    s = torch.sqrt(rho)
    hessian = directions.T @ likelihood @ directions
    scaled = torch.eye(rho.shape[0], dtype=rho.dtype, device=rho.device) + s[:, None] * hessian * s[None, :]
    factor = _cholesky(
        "reduced_cov",
        (scaled + scaled.T) / 2,
        "the reduced posterior precision P + Π_r − Π is not positive definite (the reduced prior is wider than "
        "the full prior where the data are not informative enough)",
    )
    h = s * (directions.T @ linear)
    v = torch.linalg.solve_triangular(factor, h[:, None], upper=False)[:, 0]
    dF = constant - _half_logdet(factor) + 0.5 * v @ v
    inverse = torch.cholesky_inverse(factor)
    return s * (inverse @ h), s[:, None] * inverse * s[None, :], dF


def reduce(
    posterior: Any = None,
    *,
    reduced_mean: Any,
    reduced_cov: Any,
    mean: Any = None,
    cov: Any = None,
    prior_mean: Any = None,
    prior_cov: Any = None,
    F: Any = None,
    labels: Sequence[str] | None = None,
) -> ReducedPosterior:
    """Posterior and log evidence under a reduced prior, in closed form (Bayesian model reduction).

    Parameters
    ----------
    posterior : posterior-like, optional
        Object with ``mean`` (P,), ``cov`` (P, P), ``prior_mean`` (P,), ``prior_cov`` (P, P), ``F``
        (or None) and optionally ``labels``. Alternatively pass ``mean``, ``cov``, ``prior_mean``,
        ``prior_cov`` (and ``F``, ``labels``) explicitly; giving both forms of a value raises.
    reduced_mean : array_like, shape (P,)
        Mean of the reduced prior.
    reduced_cov : array_like, shape (P, P)
        Covariance of the reduced prior, positive semi-definite. A variance of exactly 0 fixes that
        parameter (direction) at ``reduced_mean`` ("switches it off"); the result is the limit of
        vanishing variance. Directions fixed in the full prior must stay fixed at the full prior mean.
    mean, cov, prior_mean, prior_cov : array_like, optional
        Full posterior and prior moments, when no ``posterior`` is given.
    F : float, optional
        Log evidence (free energy) of the full model, when no ``posterior`` is given.
    labels : sequence of str, optional
        Parameter labels, when no ``posterior`` is given.

    Returns
    -------
    ReducedPosterior
        Reduced mean and covariance, ``dF`` (reduced minus full log evidence, nats) and
        ``F = F_full + dF`` (None when ``F_full`` is unknown).

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite entries, asymmetric or indefinite covariances, a reduced
        prior that frees a fixed parameter, or one that makes the reduced posterior improper.
    """
    full = as_gaussian(posterior, mean=mean, cov=cov, prior_mean=prior_mean, prior_cov=prior_cov, F=F, labels=labels)
    n = full.mean.shape[0]
    r_mean = as_float_tensor("reduced_mean", reduced_mean, (n,), device=full.mean.device)
    r_cov = check_covariance("reduced_cov", reduced_cov, n, full.mean.device)
    mean_r, cov_r, dF = reduce_moments(full.mean, full.cov, full.prior_mean, full.prior_cov, r_mean, r_cov)
    dF = float(dF)
    return ReducedPosterior(mean_r, cov_r, dF, None if full.F is None else full.F + dF, r_mean, r_cov, full.labels)


# --------------------------------------------------------------------------------------------------
# comparing reduced models


def label_indices(name: str, names: Sequence[str], labels: Sequence[str]) -> list[int]:
    """Positions of ``names`` in ``labels``; a ValueError naming the argument ``name`` lists unknown ones."""
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise ValueError(
            f"Invalid value for {name!r}: unknown parameter {', '.join(repr(u) for u in unknown)}; expected "
            f"labels among {', '.join(repr(label) for label in labels)}."
        )
    return [list(labels).index(n) for n in names]


def switch_off_mask(name: str, spec: Any, n: int, labels: tuple[str, ...] | None) -> Tensor:
    """A boolean mask (n,) from a mask, a list of indices or a list of labels; ValueError naming ``name``."""
    if isinstance(spec, torch.Tensor):
        spec = spec.tolist()
    items = list(spec) if not isinstance(spec, str) else [spec]
    if len(items) == n and n and all(isinstance(i, bool) for i in items):
        return torch.tensor(items, dtype=torch.bool)
    mask = torch.zeros(n, dtype=torch.bool)
    if all(isinstance(i, str) for i in items) and items:
        if labels is None:
            raise ValueError(f"Invalid value for {name!r}: parameter names need a posterior with 'labels'.")
        mask[label_indices(name, items, labels)] = True
        return mask
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items) or any(not -n <= i < n for i in items):
        raise ValueError(
            f"Invalid value for {name!r}: expected a boolean mask of length {n}, indices in 0..{n - 1} or "
            f"parameter labels, got {spec!r}."
        )
    mask[items] = True
    return mask


def switched_off_prior(prior_cov: Tensor, mask: Tensor) -> Tensor:
    """The prior covariance with the rows and columns of the ``mask``-ed parameters set to 0."""
    keep = (~mask).to(prior_cov.dtype).to(prior_cov.device)
    return prior_cov * keep[:, None] * keep[None, :]


def model_probabilities(dF: Sequence[float] | Tensor) -> Tensor:
    """Posterior model probabilities from log evidences (uniform prior over models): softmax of ``dF``."""
    return torch.softmax(torch.as_tensor(dF, dtype=torch.float64), dim=0)


def compare(posterior: Any, reductions: Mapping[str, Any]) -> ModelComparison:
    """Compare reduced models that each switch off a set of parameters, by Bayesian model reduction.

    A switched-off parameter is fixed at its prior mean (prior variance 0, and no prior covariance
    with the others); all other parameters keep their full prior.

    Parameters
    ----------
    posterior : posterior-like
        The full model (see :func:`reduce`).
    reductions : mapping of str to mask or indices
        For each reduced model, the parameters switched off: a boolean mask of length P, a sequence of
        indices, or a sequence of labels (when the posterior has ``labels``). The name ``"full"`` is
        reserved for the unreduced model.

    Returns
    -------
    ModelComparison
        ``models`` (name → ReducedPosterior, ``"full"`` first), ``dF`` and ``probabilities`` (softmax
        of ``dF`` over all models, the full one included; uniform prior over models) and ``best``.
    """
    full = as_gaussian(posterior)
    if not isinstance(reductions, Mapping) or FULL_MODEL in reductions:
        raise ValueError(
            f"Invalid value for 'reductions': expected a mapping from model names (other than {FULL_MODEL!r}) to "
            f"the parameters switched off, got {reductions!r}."
        )
    n = full.mean.shape[0]
    models = {
        FULL_MODEL: ReducedPosterior(full.mean, full.cov, 0.0, full.F, full.prior_mean, full.prior_cov, full.labels)
    }
    for name, spec in reductions.items():
        mask = switch_off_mask(f'reductions["{name}"]', spec, n, full.labels)
        r_cov = switched_off_prior(full.prior_cov, mask)
        mean_r, cov_r, dF = reduce_moments(full.mean, full.cov, full.prior_mean, full.prior_cov, full.prior_mean, r_cov)
        dF = float(dF)
        models[str(name)] = ReducedPosterior(
            mean_r, cov_r, dF, None if full.F is None else full.F + dF, full.prior_mean, r_cov, full.labels
        )
    dFs = {name: model.dF for name, model in models.items()}
    probs = model_probabilities(list(dFs.values()))
    return ModelComparison(models, dFs, {name: float(p) for name, p in zip(dFs, probs, strict=True)})

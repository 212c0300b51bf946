"""Public variational Laplace: one fit (:func:`variational_laplace`) or many in one call
(:func:`variational_laplace_batch`), returning :class:`~thalia.inference.Posterior` objects."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from thalia._logging import logger, set_verbose
from thalia._validation import as_float_tensor, check_positive_float, check_positive_int
from thalia.inference import vl
from thalia.inference.forward import ForwardJacobian, probe, real_view
from thalia.inference.noise import check_noise, identity_component
from thalia.inference.posterior import REMEDIES, Posterior, Status

Tensor = torch.Tensor


def _data(name: str, y: Any) -> Tensor:
    """A finite float64 or complex128 tensor."""
    tensor = torch.as_tensor(np.asarray(y)) if not isinstance(y, Tensor) else y
    if tensor.is_complex():
        tensor = tensor.to(torch.complex128)
        if not bool(torch.isfinite(torch.view_as_real(tensor)).all()):
            raise ValueError(f"Invalid value for {name!r}: expected finite numbers, got NaN or inf entries.")
        return tensor
    return as_float_tensor(name, tensor)


def _prior(prior_mean: Any, prior_cov: Any) -> tuple[Tensor, Tensor]:
    mean = as_float_tensor("prior_mean", prior_mean)
    if mean.ndim != 1:
        raise ValueError(f"Invalid shape for 'prior_mean': expected a vector (P,), got {tuple(mean.shape)}.")
    n = len(mean)
    cov = as_float_tensor("prior_cov", prior_cov)
    if cov.shape == (n,):
        cov = torch.diag(cov)
    if cov.shape != (n, n):
        raise ValueError(
            f"Invalid shape for 'prior_cov': expected ({n}, {n}) or the variances ({n},), got {tuple(cov.shape)}."
        )
    negative = float(torch.linalg.eigvalsh((cov + cov.T) / 2).min()) < -1e-10 * float(cov.abs().max())
    if not bool(torch.allclose(cov, cov.T)) or negative:
        raise ValueError("Invalid value for 'prior_cov': expected a symmetric positive semi-definite matrix.")
    if not bool((torch.diagonal(cov) > 0).any()):
        raise ValueError("Invalid value for 'prior_cov': every prior variance is 0, so there is nothing to fit.")
    return mean, cov


def _components(Q: Any, n_y: int, batch: int) -> Tensor:
    """Precision components as (B, n_h, n_y, n_y)."""
    if Q is None:
        return identity_component(n_y).expand(batch, 1, n_y, n_y)
    q = as_float_tensor("precision_components", Q)
    if q.ndim == 2:
        q = q[None]
    if q.ndim == 3:
        q = q[None].expand(batch, *q.shape)
    if q.ndim != 4 or q.shape[0] != batch or q.shape[-2:] != (n_y, n_y):
        raise ValueError(
            "Invalid shape for 'precision_components': expected (n_y, n_y), (n_h, n_y, n_y) or "
            f"(n_fits, n_h, n_y, n_y) with n_y = {n_y} data points and n_fits = {batch}, got {tuple(q.shape)}."
        )
    return q


def _hyperprior(hE: Any, hC: Any, n_h: int, batch: int) -> tuple[Tensor, Tensor | None]:
    mean = as_float_tensor("hE", hE)
    mean = torch.broadcast_to(mean.reshape(-1) if mean.ndim else mean, (n_h,)).clone()
    if hC is None or (np.ndim(hC) == 0 and float(hC) == 0.0):
        return mean.expand(batch, n_h), None
    cov = as_float_tensor("hC", hC)
    cov = torch.diag(torch.broadcast_to(cov, (n_h,))) if cov.ndim <= 1 else cov
    if cov.shape != (n_h, n_h) or float(torch.linalg.eigvalsh(cov).min()) <= 0:
        raise ValueError(f"Invalid value for 'hC': expected a positive variance or ({n_h}, {n_h}) covariance.")
    return mean.expand(batch, n_h), cov


def variational_laplace_batch(
    forward: Callable[[Tensor], Any],
    ys: Any,
    prior_mean: Any,
    prior_cov: Any,
    *,
    precision_components: Any = None,
    hE: Any = 8.0,
    hC: Any = 1 / 128,
    noise: str = "gaussian",
    dof: float = 4.0,
    jacobian: str | None = None,
    init: Sequence[Posterior | None] | Any = None,
    beta: Any = 1.0,
    max_iter: int = 128,
    tol: float = 0.1,
    labels: Sequence[str] | None = None,
    vectorize: bool = True,
    model_name: str = "",
    verbose: bool | int | str | None = None,
    finalize: Callable[[Posterior], Posterior] | None = None,
) -> list[Posterior]:
    """Invert ``forward`` for a batch of data sets in one call: one :class:`Posterior` per data set.

    The fits are independent (each its own noise precision, step size and convergence) but share
    every forward/Jacobian evaluation, vectorised over the still-running fits with ``torch.func.vmap``.
    Parameters as :func:`variational_laplace`, with ``ys`` stacked along a first axis (n_fits, ...),
    ``prior_mean`` (P,) or (n_fits, P), ``precision_components`` shared or per fit (n_fits, n_h, n_y,
    n_y), ``init`` a sequence of posteriors / parameter vectors (or None), and ``beta`` a scalar or one
    temperature per fit.
    """
    set_verbose(verbose)
    ys = _data("ys", ys)
    batch = ys.shape[0]
    y_real = torch.stack([real_view(y) for y in ys])
    mean0 = as_float_tensor("prior_mean", prior_mean)
    mean, cov = _prior(mean0 if mean0.ndim == 1 else mean0[0], prior_cov)
    means = torch.broadcast_to(mean0, (batch, len(mean))).clone()
    q = _components(precision_components, y_real.shape[-1], batch)
    h_mean, h_cov = _hyperprior(hE, hC, q.shape[1], batch)
    betas = torch.broadcast_to(as_float_tensor("beta", beta), (batch,)).clone()
    if bool((betas <= 0).any()) or bool((betas > 1).any()):
        raise ValueError(f"Invalid value for 'beta': expected temperatures in (0, 1], got {betas.tolist()}.")
    device = ys.device  # everything follows the data's device (explicit: move the data to move the fit)
    problem = vl.Problem(
        y_real,
        means.to(device),
        cov.to(device),
        q.to(device),
        h_mean.to(device),
        None if h_cov is None else h_cov.to(device),
        betas.to(device),
    )
    settings = vl.VLSettings(
        max_iter=check_positive_int("max_iter", max_iter),
        tol=check_positive_float("tol", tol),
        **dict(zip(("noise", "dof"), check_noise(noise, dof), strict=True)),
    )
    kind = probe(forward, means[0])  # one call of the model: tensors (autodiff) or NumPy
    fn = _numpy_model(forward) if kind == "finite_difference" else forward
    engine = ForwardJacobian(fn, jacobian=jacobian or kind, vectorize=vectorize)
    p0, h0 = _starts(init, problem, batch)
    raw = vl.run(problem, engine, settings, p0, h0)
    labels = tuple(labels) if labels is not None else tuple(f"theta[{i}]" for i in range(len(mean)))
    posteriors = [_package(raw, problem, ys, k, labels, model_name) for k in range(batch)]
    return [finalize(p) for p in posteriors] if finalize else posteriors


def _starts(init: Any, problem: vl.Problem, batch: int) -> tuple[Tensor | None, Tensor | None]:
    """Reduced starting points p0 and log-precisions h0 from posteriors or parameter vectors."""
    if init is None:
        return None, None
    items = list(init) if isinstance(init, Sequence) and not isinstance(init, Tensor) else [init] * batch
    if len(items) != batch:
        raise ValueError(f"Invalid value for 'init': expected {batch} starting points, got {len(items)}.")
    p0 = problem.prior_mean.new_zeros(batch, problem.n_free)
    h0 = problem.hE.clone()
    device = p0.device
    size = problem.prior_mean.shape[1]
    for k, item in enumerate(items):
        if item is None:
            continue
        start = item.mean if isinstance(item, Posterior) else item
        start = as_float_tensor("init", start, (size,), device=device)
        p0[k] = (start - problem.prior_mean[k]) @ problem.basis
        if isinstance(item, Posterior) and item.noise_log_precision.shape == h0[k].shape and problem.hC is not None:
            h0[k] = item.noise_log_precision.to(h0)
    return p0, h0


def _numpy_model(forward: Callable) -> Callable[[Tensor], Tensor]:
    def wrapped(theta: Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(forward(theta.detach().cpu().numpy())))

    return wrapped


def _package(raw: vl.Raw, problem: vl.Problem, ys: Tensor, k: int, labels, model_name: str) -> Posterior:
    """Raw per-fit results -> Posterior with status and message."""
    predicted = raw.predicted[k]
    shaped = (torch.complex(predicted[0], predicted[1]) if ys.is_complex() else predicted[0]).reshape(ys[k].shape)
    n_iter = int(raw.iterations[k])
    F = float(raw.F[k])
    if bool(raw.failed[k]) and not math.isfinite(F):
        status = Status.FAILED
        message = f"Inversion failed: {raw.failure[k]}; returning the prior. {REMEDIES[status]}"
    elif bool(raw.failed[k]):
        status = Status.FAILED
        message = (
            f"Inversion stopped: {raw.failure[k]}; returning the last accepted estimate (F = {F:.3f}). "
            f"{REMEDIES[status]}"
        )
    elif bool(raw.converged[k]):
        status, message = Status.CONVERGED, f"converged after {n_iter} iterations (F = {F:.3f})"
    else:
        status = Status.MAX_ITER
        message = f"Not converged after {n_iter} iterations (F = {F:.3f}). {REMEDIES[status]}"
    if status is not Status.CONVERGED:
        logger.warning("%s", message)
    return Posterior(
        mean=raw.mean[k],
        cov=raw.cov[k],
        prior_mean=problem.prior_mean[k],
        prior_cov=problem.prior_cov,
        F=F if math.isfinite(F) else math.nan,
        L=tuple(float(v) for v in raw.L[k]) if math.isfinite(F) else (math.nan,) * 3,
        noise_log_precision=raw.h[k],
        noise_cov=raw.h_cov[k],
        status=status,
        message=message,
        iterations=n_iter,
        trace=raw.trace[k],
        data=ys[k],
        predicted=shaped,
        labels=labels,
        model=model_name,
        seconds=raw.seconds,
    )


def variational_laplace(
    forward: Callable[[Tensor], Any],
    y: Any,
    prior_mean: Any,
    prior_cov: Any,
    **options: Any,
) -> Posterior:
    """Variational Laplace inversion of y = forward(θ) + ε (SPM's ``spm_nlsi_GN`` scheme).

    Parameters
    ----------
    forward : callable
        θ (P,) float64 tensor -> prediction of y (tensor of y's shape, real or complex). Its
        Jacobian is taken by automatic differentiation; a function of NumPy arrays (or
        ``jacobian="finite_difference"``) uses forward differences with SPM's step e⁻⁸.
    y : array_like
        Data (any shape; complex allowed, e.g. a CSD).
    prior_mean : array_like, (P,)
    prior_cov : array_like, (P, P) or (P,)
        Prior covariance (or variances). Zero variance fixes a parameter.
    precision_components : array_like, optional
        Noise precision components Qᵢ: (n_y, n_y) or (n_h, n_y, n_y), n_y = y.size; default the
        identity. Π = Σᵢ exp(hᵢ)·Qᵢ.
    hE, hC : float or array
        Hyperprior mean and (co)variance of the log-precisions h (SPM: 8 and 1/128). ``hC=0`` fixes
        h = hE (known noise precision).
    noise : {"gaussian", "student_t"}
        ``"student_t"`` reweights data points by their residuals (robust to outliers, e.g. mains lines).
    dof : float
        Student-t degrees of freedom.
    jacobian : {"autodiff", "finite_difference"}, optional
    init : Posterior or array_like, optional
        Starting point (warm start): a previous posterior (its mean and noise precision) or θ.
    beta : float
        Likelihood temperature in (0, 1] (1: ordinary inversion).
    max_iter : int
        Most iterations (128).
    tol : float
        Convergence when the predicted free-energy gain is below ``tol`` on 4 consecutive iterations.
    labels : sequence of str, optional
        Parameter names for summaries.
    verbose : bool or str, optional

    Returns
    -------
    Posterior
    """
    y = _data("y", y)
    init = options.pop("init", None)
    return variational_laplace_batch(forward, y[None], prior_mean, prior_cov, init=[init], **options)[0]

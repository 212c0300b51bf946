"""Fixed points: damped Newton with an exact Jacobian, a result report, implicit differentiation.

A model hands :func:`solve` a residual function ``fun(v) -> (F(v), dF/dv)`` on whatever variable
it solves for (the full state, or a reduced one such as TCM's membrane potentials), a start and a
tolerance. The solver never silently returns the initial guess: on failure it warns with the
original tcm_py message and its advice and reports ``converged=False``.

For derivatives with respect to parameters, :func:`implicit_step` applies one Newton step at the
converged point with a *detached* Jacobian: its value is the fixed point and its derivative is the
implicit-function-theorem derivative dv*/dθ = −(∂F/∂v)⁻¹ ∂F/∂θ, in forward mode, reverse mode and
under ``torch.func.vmap`` alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from thalia._logging import logger

Tensor = torch.Tensor
ResidualFn = Callable[[Tensor], tuple[Tensor, Tensor]]

NOT_CONVERGED_MESSAGE = "Fixed point solver did not fully converge"
ADVICE = (
    "This typically means that parameter scaling needs adjustment, the initial state guess is "
    "poor, or conductance values are too extreme. Check the leak conductance (GL = exp(leak)), the "
    "synaptic gains (H, Hn, Gb, A, AN) and the external input scaling (C, E); or start from another "
    "state (x0=...) or allow more iterations (max_iter=...)."
)


class ConvergenceWarning(UserWarning):
    """A fixed point or fit did not converge; the result says how far it got."""


@dataclass
class FixedPoint:
    """Result of a fixed-point search.

    Attributes
    ----------
    x : Tensor, (n,)
        The state (flat, the model's state order). Differentiable in θ when the solve was.
    converged : bool
        True when max |f(x)| < tol.
    residual : float
        max |f(x)| of the full flow at ``x`` (state units per second).
    iterations : int
        Newton iterations used.
    message : str
        What happened, with advice on failure.
    """

    x: Tensor
    converged: bool
    residual: float
    iterations: int
    message: str
    _jacobian: Callable[[], Tensor] | None = field(default=None, repr=False)
    _eigenvalues: Tensor | None = field(default=None, repr=False)

    @property
    def eigenvalues(self) -> Tensor:
        """Eigenvalues of the (undelayed) Jacobian at x, sorted by decreasing real part."""
        if self._eigenvalues is None:
            if self._jacobian is None:
                raise ValueError("This fixed point was created without a Jacobian.")
            ev = torch.linalg.eigvals(self._jacobian().detach())
            self._eigenvalues = ev[torch.argsort(ev.real, descending=True)]
        return self._eigenvalues

    @property
    def leading_eigenvalue(self) -> complex:
        """The eigenvalue with the largest real part (s⁻¹); > 0 means an unstable fixed point."""
        return complex(self.eigenvalues[0])

    @property
    def stable(self) -> bool:
        """All eigenvalues of the undelayed Jacobian in the left half-plane."""
        return self.leading_eigenvalue.real < 0

    def report(self) -> str:
        """One paragraph: convergence, residual, iterations, leading eigenvalue and its frequency."""
        ev = self.leading_eigenvalue
        freq = abs(ev.imag) / (2 * torch.pi)
        state = "stable" if ev.real < 0 else "UNSTABLE"
        return (
            f"{'converged' if self.converged else 'NOT converged'} in {self.iterations} iterations, "
            f"max|f| = {self.residual:.3g}; leading eigenvalue {ev.real:.4g} "
            f"{'+' if ev.imag >= 0 else '-'} {abs(ev.imag):.4g}i s^-1 ({freq:.1f} Hz): {state}"
        )


@dataclass
class NewtonResult:
    """Last iterate of :func:`damped_newton`, with F and dF/dv there."""

    v: Tensor
    iterations: int
    norm: float
    converged: bool
    residual: Tensor
    jacobian: Tensor


def damped_newton(
    fun: ResidualFn,
    v0: Tensor,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    max_step: float = 10.0,
    step_tol: float = 0.0,
) -> NewtonResult:
    """Damped Newton on F(v) = 0 with the exact Jacobian (adaptive; not for use under vmap).

    Each step is capped to ``max_step`` in max-norm, then halved (up to 20 times) until max |F|
    decreases. Stops when max |F| < ``tol``, or — with ``step_tol`` > 0 — as soon as the full Newton
    step is below ``step_tol`` in max-norm, *before taking it*: the caller then takes that last step
    from the returned residual and Jacobian (quadratic convergence puts it at ~|step|² from the root)
    and must check the residual there.
    """
    v = v0.detach().clone()
    residual, jac = fun(v)
    norm = float(residual.abs().max())
    for iteration in range(1, max_iter + 1):
        if norm < tol:
            return NewtonResult(v, iteration - 1, norm, True, residual, jac)
        step = _newton_step(residual, jac, max_step)
        if float(step.abs().max()) < step_tol:
            return NewtonResult(v, iteration - 1, norm, True, residual, jac)
        for _ in range(20):
            trial = v - step
            trial_res, trial_jac = fun(trial)
            trial_norm = float(trial_res.abs().max())  # NaN if any entry is NaN
            if trial_norm < norm:  # False for NaN and inf
                break
            step = step / 2
        else:
            logger.debug("Newton stalled at iteration %d (max|F| = %.3g)", iteration, norm)
            return NewtonResult(v, iteration, norm, False, residual, jac)
        v, residual, jac, norm = trial, trial_res, trial_jac, trial_norm
    return NewtonResult(v, max_iter, norm, norm < tol, residual, jac)


def fixed_newton(fun: ResidualFn, v0: Tensor, n_iter: int, max_step: float = 10.0) -> Tensor:
    """``n_iter`` capped Newton steps, with no data-dependent control flow (safe under vmap)."""
    v = v0
    for _ in range(n_iter):
        residual, jac = fun(v)
        v = v - _newton_step(residual, jac, max_step)
    return v


def _newton_step(residual: Tensor, jac: Tensor, max_step: float) -> Tensor:
    # solve_ex does not raise on a singular Jacobian: its step is then non-finite, the trial's
    # residual is NaN and the damped search rejects it (or, under vmap, the output shows it)
    step, _ = torch.linalg.solve_ex(jac, residual)
    size = step.abs().amax(-1, keepdim=True)
    return step * torch.clamp(max_step / torch.clamp(size, min=1e-300), max=1.0)


def implicit_step(fun: ResidualFn, v_star: Tensor) -> Tensor:
    """v* − J(v*)⁻¹ F(v*, θ) with J detached: value v*, derivative the implicit dv*/dθ."""
    residual, jac = fun(v_star.detach())
    return v_star.detach() - torch.linalg.solve(jac.detach(), residual)


def warn_not_converged(residual: float, iterations: int, tol: float) -> str:
    """Warn (ConvergenceWarning) and return the message."""
    message = (
        f"{NOT_CONVERGED_MESSAGE}: max|f| = {residual:.3g} after {iterations} iterations (tolerance {tol:g}). {ADVICE}"
    )
    warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return message

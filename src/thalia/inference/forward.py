"""Forward models y = g(θ) and their parameter Jacobians, for one parameter vector or a batch.

A forward model is any callable taking a float64 parameter vector θ (P,) (a torch tensor) and
returning a tensor y of any shape, real or complex (e.g. a CSD (F, n, n)). Inference works on its
*real view*: y flattened (C order) and, when complex, its real and imaginary parts stacked, shape
(c, n_y) with c = 1 (real) or 2 (complex). Complex data count once in the likelihood's normalisation
(as in SPM); their real and imaginary residuals both enter the quadratic forms.

:class:`ForwardJacobian` evaluates g and dg/dθ·V (V: the (P, n_free) basis of the free parameter
directions) for a batch of θ by

* ``"autodiff"`` (default): forward-mode automatic differentiation, one Jacobian-vector product per
  free direction (``torch.func.jvp`` under ``vmap``), vectorised over the batch as well when the
  model allows it;
* ``"finite_difference"``: forward differences along each free direction with SPM's step e⁻⁸
  (``spm_diff``), for models that are not differentiable (e.g. NumPy code) or to reproduce SPM.

Evaluations that raise or return non-finite values give NaN outputs, which the inversion treats as a
failed step (it backs off) rather than an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from thalia._logging import logger
from thalia._validation import check_option

Tensor = torch.Tensor
ForwardFn = Callable[[Tensor], Tensor]

JACOBIANS = ("autodiff", "finite_difference")
#: SPM's forward-difference step (``spm_diff``: exp(−8)).
FD_STEP = math.exp(-8.0)
#: Errors a forward model may raise at a bad parameter set (singular systems, failed solves).
MODEL_ERRORS = (RuntimeError, ValueError, ArithmeticError, torch.linalg.LinAlgError)


def real_view(y: Tensor) -> Tensor:
    """(c, n_y) real view of a model output or data tensor: flattened, real and imaginary parts stacked."""
    flat = y.reshape(-1)
    if flat.is_complex():
        return torch.stack([flat.real, flat.imag])
    return flat[None]


class ForwardJacobian:
    """g(θ) and its Jacobian in the free directions for a batch of parameter vectors.

    Parameters
    ----------
    fn : callable
        θ (P,) float64 tensor -> y tensor (any shape, real or complex).
    jacobian : {"autodiff", "finite_difference"}
    vectorize : bool
        Evaluate a batch with ``torch.func.vmap`` (falls back to a loop, with a log message, if the
        model cannot be vmapped).
    step : float
        Finite-difference step (default SPM's e⁻⁸).
    chunk_size : int
        Most model evaluations per vmap call (bounds the memory of large batches).
    """

    def __init__(
        self,
        fn: ForwardFn,
        *,
        jacobian: str = "autodiff",
        vectorize: bool = True,
        step: float = FD_STEP,
        chunk_size: int = 1024,
    ) -> None:
        self.fn = fn
        self.chunk_size = chunk_size
        self.jacobian = check_option("jacobian", jacobian, JACOBIANS)
        self.vectorize = vectorize
        self.step = step

    # -- one parameter vector ---------------------------------------------------------------------
    def _real(self, theta: Tensor) -> Tensor:
        return real_view(self.fn(theta)).to(theta.dtype)

    def _autodiff_one(self, theta: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
        """Forward mode: one Jacobian-vector product per free direction (the columns of ``basis``)."""

        def directional(v: Tensor) -> tuple[Tensor, Tensor]:
            return torch.func.jvp(self._real, (theta,), (v,))

        return torch.func.vmap(directional, in_dims=1, out_dims=(None, -1))(basis)

    def _fd(self, thetas: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
        """Forward differences for every row of ``thetas``: all (1 + n_free)·B points in one map."""
        B, n = thetas.shape[0], basis.shape[1]
        points = torch.cat([thetas[:, None], thetas[:, None] + self.step * basis.T[None]], 1)
        values = self._map(self._real, points.reshape(B * (n + 1), -1))
        values = values.reshape(B, n + 1, *values.shape[1:])
        return values[:, 0], ((values[:, 1:] - values[:, :1]) / self.step).movedim(1, -1)

    def _pairs(self, primals: Tensor, tangents: Tensor) -> tuple[Tensor, Tensor]:
        """(g(θ), dg(θ)·v) for rows of (θ, v) pairs in one flat vmap, in chunks.

        Fits × directions are flattened into one vmap level (the model runs once per pair): nesting a
        vmap over fits around a vmap over directions gives wrong rows in PyTorch 2.13 (e.g.
        ``vmap(jacfwd(f))`` where f calls ``torch.linalg.solve(A(θ), B)`` with a constant B), and
        ``vmap(jacrev(f))``, though right, is ~5× slower than a loop.
        """

        def one(theta: Tensor, tangent: Tensor) -> tuple[Tensor, Tensor]:
            return torch.func.jvp(self._real, (theta,), (tangent,))

        return torch.func.vmap(one, chunk_size=self.chunk_size)(primals, tangents)

    def _autodiff(self, thetas: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
        if len(thetas) == 1 or not self.vectorize:
            return self._map(lambda theta: self._autodiff_one(theta, basis), thetas, vectorize=False)
        B, n = thetas.shape[0], basis.shape[1]
        try:
            values, derivatives = self._pairs(thetas.repeat_interleave(n, 0), basis.T.repeat(B, 1))
        except MODEL_ERRORS + (NotImplementedError,) as err:
            logger.warning("forward model not vectorisable (%s); evaluating one parameter set at a time", err)
            self.vectorize = False
            return self._autodiff(thetas, basis)
        values = values.reshape(B, n, *values.shape[1:])[:, 0]
        return values, derivatives.reshape(B, n, *derivatives.shape[1:]).movedim(1, -1)

    # -- batches ----------------------------------------------------------------------------------
    def _map(self, fn: Callable[[Tensor], Tensor], points: Tensor, vectorize: bool | None = None):
        if self.vectorize if vectorize is None else vectorize:
            try:
                return torch.func.vmap(fn, chunk_size=self.chunk_size)(points)
            except MODEL_ERRORS + (NotImplementedError,) as err:
                logger.info("forward model not vectorisable (%s); evaluating one parameter set at a time", err)
                self.vectorize = False
        results = [self._guarded(fn, point) for point in points]
        template = next((r for r in results if r is not None), None)
        if template is None:
            raise FloatingPointError("the forward model failed at every parameter set")
        return _stack_filled(results, template)

    @staticmethod
    def _guarded(fn: Callable, point: Tensor):
        try:
            return fn(point)
        except MODEL_ERRORS as err:
            logger.debug("forward model failed: %s", err)
            return None

    def __call__(self, thetas: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
        """(f (B, c, n_y), J (B, c, n_y, n_free)) at the rows of ``thetas`` (B, P); NaN where g failed."""
        if self.jacobian == "finite_difference":
            return self._fd(thetas, basis)
        return self._autodiff(thetas, basis)


def _stack_filled(results: list, template) -> Tensor | tuple[Tensor, ...]:
    """Stack per-point results, NaN-filling the failed (None) ones like ``template``."""
    if isinstance(template, tuple):
        return tuple(_stack_filled([None if r is None else r[i] for r in results], t) for i, t in enumerate(template))
    return torch.stack([torch.full_like(template, float("nan")) if r is None else r for r in results])


def probe(fn: Callable, theta: Tensor) -> str:
    """How to differentiate a user's forward model: "autodiff" if it maps tensors to tensors, else
    "finite_difference" (a NumPy model; it is then wrapped to take and return tensors)."""
    try:
        out = fn(theta)
    except TypeError:
        return "finite_difference"
    return "autodiff" if isinstance(out, Tensor) else "finite_difference"

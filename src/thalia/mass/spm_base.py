"""Shared shell of SPM's neural mass models (CMC, CMM_NMDA): LFP readout, fixed points, spectra."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from thalia._validation import as_float_tensor, check_frequencies, check_option
from thalia.mass import spm_spectral
from thalia.mass._autodiff import tracks_derivatives
from thalia.mass.base import NeuralMassModel
from thalia.mass.delays import delay_mode_quality
from thalia.mass.fixed_point import ConvergenceWarning, FixedPoint, damped_newton, implicit_step
from thalia.spectra import CSD

Tensor = torch.Tensor

#: Largest last relative Newton step of the batched delayed-mode solve that counts as converged.
DELAY_MODE_TOL = 1e-10
#: Below this a connection counts as absent when detecting reciprocal pairs (SPM: exp(−8)).
RECIPROCAL_THRESHOLD = float(np.exp(-8.0))


def reciprocal_damping(a: Tensor, factor: float) -> Tensor:
    """Divide reciprocal (both directions present) extrinsic gains by 1 + ``factor`` (SPM's rule)."""
    present = a.detach() > RECIPROCAL_THRESHOLD
    both = present & present.transpose(-1, -2)
    return a / (1.0 + factor * both.to(a.dtype))


def extrinsic_masks(ns: int, **masks: Any) -> dict[str, np.ndarray]:
    """Validate (ns, ns) boolean adjacency matrices [target, source]; ``None`` means none."""
    out = {}
    for name, value in masks.items():
        if value is None:
            out[name] = np.zeros((ns, ns), dtype=bool)
            continue
        array = np.asarray(value)
        if array.shape != (ns, ns):
            raise ValueError(
                f"Invalid shape for {name!r}: expected an ({ns}, {ns}) array of 0/1 (or bool) [target, source], "
                f"got shape {array.shape}."
            )
        if not np.isin(array, (0, 1)).all():
            bad = array[~np.isin(array, (0, 1))].ravel()[0]
            raise ValueError(f"Invalid value for {name!r}: expected only 0/1 (or bool) entries, got {bad.item()!r}.")
        out[name] = array.astype(bool)
    return out


class SPMModel(NeuralMassModel):
    """Base for SPM's models: column-major (spm_vec) states, LFP channels, SPM's spectral mode.

    Subclasses set ``states_per_source``, ``delay_method`` (thalia's default way of folding the delays
    into the Jacobian) and ``spm_delay_method`` (SPM's), and implement ``flow``, ``delays``,
    ``observation`` and ``expansion_point``.
    """

    n_sources: int
    states_per_source: int
    delay_method: str
    spm_delay_method: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_sources={self.n_sources})"

    def _lfp(self, gain: Tensor, weights: Tensor) -> Tensor:
        """(ns, n) matrix: channel i reads gain_i · Σ_k weights_k · x(i, k) (state index i + ns·k)."""
        ns = self.n_sources
        eye = torch.eye(ns, dtype=gain.dtype, device=gain.device)
        return (gain[:, None, None] * weights[None, :, None] * eye[:, None, :]).reshape(ns, -1)

    def delay_operator(self, J: Tensor, p: Mapping[str, Any], method: str | None = None) -> Tensor:
        """Q with Q·J the delayed Jacobian; ``method`` defaults to the model's (see :mod:`thalia.mass.delays`)."""
        return spm_spectral.delay_operator(J, self.delays(p), method or self.delay_method)

    # -- fixed point -----------------------------------------------------------------------------
    def fixed_point_start(self) -> Tensor:
        return torch.zeros(self.n_states, dtype=torch.float64)

    def fixed_point(self, p: Mapping[str, Any], x0: Any = None, tol: float = 1e-9, max_iter: int = 100) -> FixedPoint:
        """The fixed point f(x*) = 0 by damped Newton with the exact Jacobian, from SPM's initial state.

        The search runs on detached parameters; when θ carries derivatives one implicit-function step
        makes x* differentiable (dx*/dθ = −J⁻¹ ∂f/∂θ).
        """
        t = self._tensors(p)
        start = self.fixed_point_start() if x0 is None else as_float_tensor("x0", x0, (self.n_states,))
        start = start.to(t["L"].device)
        u = self.zero_input(start)

        def residual_fn(values: Mapping[str, Tensor]):
            return lambda x: (self.flow(x, u, values), self.jacobian(x, values))

        result = damped_newton(residual_fn({k: v.detach() for k, v in t.items()}), start, tol=tol, max_iter=max_iter)
        residual = float(result.residual.abs().max())
        x = result.v
        if tracks_derivatives(*t.values()):
            x = implicit_step(residual_fn(t), x)
        if result.converged:
            message = f"converged: max|f| = {residual:.3g} after {result.iterations} Newton iterations"
        else:
            message = (
                f"{self.name} fixed point not found: max|f| = {residual:.3g} after {result.iterations} iterations. "
                "Start elsewhere (x0=...), allow more iterations (max_iter=...) or check the parameters."
            )
            warnings.warn(message, ConvergenceWarning, stacklevel=2)
        jac = result.jacobian
        return FixedPoint(x, result.converged, residual, result.iterations, message, _jacobian=lambda: jac)

    # -- spectral model (SPM's modal mode is these models' only one) ----------------------------
    def csd_batch(self, thetas: Any, freqs: Any, *, jacobian: str = "exact") -> Tensor:
        """CSDs (B, F, n_ch, n_ch) of a batch of parameter vectors (layout of ``self.space``).

        One ``torch.func.vmap`` call when the expansion point does not need a search (CMC; CMM_NMDA at
        SPM's initial state); set by set otherwise. Uses the model's own delay operator. Under vmap the
        exact delayed modes take a fixed number of Newton steps; sets where they did not converge
        (clustered modes) are recomputed one by one with the eager solver and its fallback.
        """
        thetas = self.parameter_vectors(thetas)
        freqs = check_frequencies("freqs", freqs).to(thetas)
        check_option("jacobian", jacobian, spm_spectral.JACOBIANS)

        def one(theta: Tensor) -> Tensor:
            t = self.space.unpack(theta)
            return spm_spectral.spectral_response(self, t, freqs, self.expansion_point(t), jacobian=jacobian).csd

        if not self.batchable:
            return torch.stack([one(theta) for theta in thetas])
        csd = torch.func.vmap(one)(thetas)
        if self.delay_method == "exact":
            quality = torch.func.vmap(self._delay_quality)(thetas)
            for k in torch.nonzero(~(quality <= DELAY_MODE_TOL)).flatten().tolist():
                csd[k] = self.spectral_response(self.space.unpack(thetas[k]), freqs, jacobian=jacobian).csd
        return csd

    def _delay_quality(self, theta: Tensor) -> Tensor:
        t = self.space.unpack(theta)
        return delay_mode_quality(self.jacobian(self.expansion_point(t), t), self.delays(t))

    @property
    def batchable(self) -> bool:
        """Whether :meth:`csd_batch` can vmap (the expansion point is not searched for)."""
        return True

    def transfer(self, p: Mapping[str, Any], freqs: Any, **options: Any) -> Tensor:
        """Transfer function S(w) (F, n_channels, ns) by SPM's modal expansion; options as :meth:`csd`."""
        return self.spectral_response(p, freqs, **options).transfer

    def csd(self, p: Mapping[str, Any], freqs: Any, **options: Any) -> CSD:
        """Cross-spectral density (SPM's ``spm_csd_mtf``) as a :class:`~thalia.spectra.CSD`.

        Options: ``jacobian="exact"`` (default) or ``"finite_difference"`` (SPM's forward differences,
        step e⁻⁸); ``x`` (expansion point); ``delay`` (``"exact"``, ``"spm_series"``, ``"first_order"``,
        ``"none"``; default: the model's ``delay_method``).
        """
        return self.modal_csd(p, freqs, **options)

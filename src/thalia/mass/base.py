"""The neural mass model interface: what every model (TCM, CMC, CMM_NMDA) provides.

A model is configuration plus pure functions of tensors (DESIGN principle 1):

* ``space`` — its :class:`~thalia.params.ParamSpace` (names, shapes, priors);
* ``flow(x, u, p)`` — dx/dt, flat state (model order), flat input, parameter dict;
* ``jacobian(x, p)`` — exact ∂f/∂x (default: forward-mode autodiff of the flow);
* ``input_matrix(x, p)`` — ∂f/∂u;
* ``delays(p)`` — the (n, n) delay matrix D in seconds (zeros if the model has none);
* ``observation(p)`` — the (n_channels, n) observation matrix;
* ``fixed_point(p)`` — a :class:`~thalia.mass.fixed_point.FixedPoint`;
* ``transfer(p, freqs)`` and ``csd(p, freqs)`` — the spectral model.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import torch

from thalia._validation import as_float_tensor, check_frequencies
from thalia.mass import spm_spectral
from thalia.params import ParameterSet, ParamSpace
from thalia.spectra import CSD

Tensor = torch.Tensor


class NeuralMassModel(abc.ABC):
    """Base class: configuration holder around pure flow / Jacobian / spectral functions."""

    name: str = "model"
    #: How delays are folded into the Jacobian in the modal (SPM) spectral mode: thalia's default and
    #: SPM's (see :mod:`thalia.mass.delays`).
    delay_method: str = "first_order"
    spm_delay_method: str = "first_order"
    space: ParamSpace
    n_states: int
    n_inputs: int
    channels: tuple[str, ...]

    # -- parameters ------------------------------------------------------------------------------
    def default_parameters(self) -> ParameterSet:
        """The model's default parameter set (= the prior means)."""
        return self.space.prior_mean()

    def parameters(self, values: Mapping[str, Any] | None = None, **updates: Any) -> ParameterSet:
        """A validated parameter set: the defaults updated by ``values`` and keyword arguments."""
        base = self.default_parameters()
        merged = {**(dict(values) if values is not None else {}), **updates}
        return base.replace(**merged) if merged else base

    def _tensors(self, p: Mapping[str, Any], validate: bool = True) -> dict[str, Tensor]:
        """Accept a ParameterSet or a mapping (validated: names, shapes, finiteness; partial ones are
        merged into the defaults). ``validate=False`` is for the pure functions on hot paths: a complete
        mapping of tensors is then used as it is."""
        if isinstance(p, ParameterSet):
            if p.space is not self.space and not p.space.compatible(self.space):
                raise ValueError(
                    f"Invalid value for 'p': the parameter set has {p.space.size} numbers in another layout "
                    f"than this {self.name} model's ({self.space.size}); build it with this model's "
                    "default_parameters() or parameters()."
                )
            return self._check_values(p.tensors())
        if (
            not validate
            and isinstance(p, Mapping)
            and all(isinstance(v, Tensor) for v in p.values())
            and set(p) >= set(self.space.names)
        ):
            return dict(p)  # already tensors with every name: the pure-function fast path
        return self._check_values(self.parameters(p).tensors())

    def parameter_vectors(self, thetas: Any) -> Tensor:
        """A (n_sets, space.size) float64 batch of parameter vectors, checked."""
        thetas = as_float_tensor("thetas", thetas)
        if thetas.ndim != 2 or thetas.shape[1] != self.space.size:
            raise ValueError(
                f"Invalid shape for 'thetas': expected (n_sets, {self.space.size}), got {tuple(thetas.shape)}."
            )
        return thetas

    def _check_values(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Model-specific checks of validated values (none by default)."""
        return tensors

    # -- dynamics --------------------------------------------------------------------------------
    @abc.abstractmethod
    def flow(self, x: Tensor, u: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """dx/dt (pure, differentiable)."""

    def jacobian(self, x: Tensor, p: Mapping[str, Tensor], u: Tensor | None = None) -> Tensor:
        """Exact ∂f/∂x by forward-mode automatic differentiation."""
        u = self.zero_input(x) if u is None else u
        return torch.func.jacfwd(lambda state: self.flow(state, u, p))(x)

    def input_matrix(self, x: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """Exact ∂f/∂u at u = 0."""
        return torch.func.jacfwd(lambda u: self.flow(x, u, p))(self.zero_input(x))

    def zero_input(self, like: Tensor) -> Tensor:
        return torch.zeros(self.n_inputs, dtype=like.dtype, device=like.device)

    def delays(self, p: Mapping[str, Tensor]) -> Tensor:
        """(n, n) delays in seconds; none by default."""
        ref = next(iter(p.values()))
        return torch.zeros(self.n_states, self.n_states, dtype=ref.dtype, device=ref.device)

    def expansion_point(self, p: Mapping[str, Any]) -> Tensor:
        """Where the spectral model is linearised: the fixed point by default."""
        return self.fixed_point(p).x

    # -- SPM's modal spectral mode ---------------------------------------------------------------
    def spectral_response(
        self, p: Mapping[str, Any], freqs: Any, *, jacobian: str = "exact", x: Any = None, delay: str | None = None
    ) -> spm_spectral.SpectralResponse:
        """SPM's spectral mode (``spm_csd_mtf``) at θ with every intermediate.

        Parameters
        ----------
        p : ParameterSet or mapping
        freqs : array_like
            Frequencies in Hz.
        jacobian : {"exact", "finite_difference"}
            Automatic/closed-form differentiation, or SPM's forward differences (step e⁻⁸).
        x : array_like, optional
            Expansion point (default :meth:`expansion_point`).
        delay : {"exact", "spm_series", "first_order", "none"}, optional
            Delay operator (default: the model's ``delay_method``).
        """
        freqs = check_frequencies("freqs", freqs)
        t = self._tensors(p)
        state = self.expansion_point(t) if x is None else as_float_tensor("x", x, (self.n_states,))
        return spm_spectral.spectral_response(self, t, freqs, state, jacobian=jacobian, delay=delay)

    #: Whether a batch of fits evaluates its parameter Jacobians in one vmap over (fit, direction)
    #: pairs (see :mod:`thalia.inference.forward`); models whose forward pass is dominated by a
    #: per-parameter-set search (TCM's fixed point) are faster one fit at a time.
    vmap_jacobians: bool = True
    #: Natural units of parameters: name -> function(index tuple) -> (kind, scale, unit), where the
    #: value is scale·exp(θ) ("log") or scale·θ ("linear"). Used by posterior summaries.
    natural_scales: dict = {}

    def natural_units(self) -> dict[str, tuple[str, float, str]]:
        """Per parameter label: (kind, scale, unit) with value = scale·exp(θ) or scale·θ."""
        out = {}
        for spec in self.space.specs:
            rule = self.natural_scales.get(spec.name)
            if rule is None:
                continue
            for index, label in zip(spec.indices(), spec.entry_labels(), strict=True):
                kind, scale, unit = rule(index)
                out[label] = (kind, float(scale), unit)
        return out

    def spectrum_function(self, freqs: Any, **options: Any):
        """A pure function θ (space.size,) -> CSD tensor (F, n_channels, n_channels) for inversion:
        differentiable by automatic differentiation and vmap-safe where the model allows (``options``
        as :meth:`spectral_response`)."""
        freqs = check_frequencies("freqs", freqs)

        def csd(theta: Tensor) -> Tensor:
            t = self.space.unpack(theta)
            x = self.expansion_point(t)
            return spm_spectral.spectral_response(self, t, freqs.to(theta), x, **options).csd

        return csd

    def modal_csd(self, p: Mapping[str, Any], freqs: Any, **options: Any) -> CSD:
        """The CSD of :meth:`spectral_response` as a :class:`~thalia.spectra.CSD`."""
        response = self.spectral_response(p, freqs, **options)
        return CSD(response.freqs, response.csd, self.channels, units="a.u.")

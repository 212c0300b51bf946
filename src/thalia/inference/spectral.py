"""Fitting neural mass models to spectra: :func:`fit_spectrum` (one spectrum) and
:func:`fit_spectra` (many, in one batched call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from thalia._logging import logger
from thalia._validation import check_option, check_positive_int
from thalia.inference.fit import variational_laplace_batch
from thalia.inference.noise import csd_component, relative_component
from thalia.inference.posterior import Posterior
from thalia.mass import CMC, CMMNMDA, TCM
from thalia.params import ParameterSet, ParamSpace
from thalia.spectra import CSD

Tensor = torch.Tensor
MODELS = {"tcm": TCM, "cmc": CMC, "cmm_nmda": CMMNMDA}
#: SPM's spectral mode: its flow Jacobian (forward differences), its delay operator, and
#: finite-difference parameter Jacobians (reproduces ``spm_nlsi_GN`` on ``spm_csd_mtf``).
MODES = ("exact", "spm")
#: Precision component of the data: SPM's (peaks dominate) or relative (every frequency alike).
WEIGHTINGS = {"spm": csd_component, "relative": relative_component}
#: Spread of extra starts around the prior mean, in prior standard deviations.
START_SPREAD = 0.5


def _model(model: Any, priors: Any):
    if isinstance(model, str):
        name = check_option("model", model, tuple(MODELS))
        if name != "tcm" and isinstance(priors, ParameterSet):
            from thalia.mass import spm

            return spm.model_for(name, priors), name
        return MODELS[name](), name
    if not hasattr(model, "spectrum_function") or not hasattr(model, "space"):
        raise ValueError(
            "Invalid value for 'model': allowed 'tcm', 'cmc', 'cmm_nmda' or a neural mass model instance, "
            f"got {model!r}."
        )
    return model, getattr(model, "name", type(model).__name__).lower()


def _space(model, priors: Any) -> ParamSpace:
    if priors is None:
        return model.space
    space = priors.space if isinstance(priors, ParameterSet) else priors
    if not isinstance(space, ParamSpace) or not space.compatible(model.space):
        raise ValueError(
            f"Invalid value for 'priors': expected a ParamSpace or ParameterSet with the layout of the model's "
            f"space ({model.space.size} parameters: {', '.join(model.space.names)}), got {type(priors).__name__}."
        )
    return space


def as_csd(spectrum: Any, name: str = "spectrum") -> CSD:
    """A :class:`~thalia.spectra.CSD` from a CSD, or ``(freqs, values)`` with values (F,) (one PSD),
    (F, n) (n auto-spectra, no cross-spectra) or (F, n, n) complex."""
    if isinstance(spectrum, CSD):
        return spectrum
    if not isinstance(spectrum, tuple | list) or len(spectrum) != 2:
        raise ValueError(
            f"Invalid value for {name!r}: expected a thalia.spectra.CSD or a pair (freqs, values), "
            f"got {type(spectrum).__name__}."
        )
    freqs, values = spectrum
    values = torch.as_tensor(np.asarray(values))
    if values.ndim == 1:
        values = values[:, None, None]
    elif values.ndim == 2:
        values = torch.diag_embed(values)
    if values.ndim != 3 or values.shape[1] != values.shape[2]:
        raise ValueError(
            f"Invalid shape for {name!r} values: expected (F,), (F, n) or (F, n, n), got {tuple(values.shape)}."
        )
    return CSD(freqs, values.to(torch.complex128), tuple(f"ch{i + 1}" for i in range(values.shape[1])))


def _forward(model, data: CSD, mode: str):
    # SPM's spectral mode: its finite-difference flow Jacobian and its delay operator for the model
    options = {"jacobian": "finite_difference", "delay": model.spm_delay_method} if mode == "spm" else {}
    fn = model.spectrum_function(data.freqs, **options)
    n = len(model.channels)
    if n != data.n_channels:
        raise ValueError(
            f"Invalid value for 'spectrum': it has {data.n_channels} channel(s) but the model predicts {n} "
            f"({', '.join(model.channels)}); pick channels (CSD.pick) or configure the model's channels."
        )
    return fn


def fit_spectra(
    spectra: Sequence[Any],
    model: Any = "tcm",
    *,
    priors: ParamSpace | ParameterSet | None = None,
    mode: str = "exact",
    weighting: str = "spm",
    init: Sequence[Posterior | None] | None = None,
    device: torch.device | str | None = None,
    **options: Any,
) -> list[Posterior]:
    """Fit one model to many spectra in one batched call (one Posterior per spectrum).

    All spectra must share frequencies and channels. Options as :func:`fit_spectrum`; ``device``
    (e.g. ``"cuda"``) runs the whole batch there (default: where the data are, i.e. the CPU for arrays).
    """
    check_option("mode", mode, MODES)
    component = WEIGHTINGS[check_option("weighting", weighting, tuple(WEIGHTINGS))]
    model, name = _model(model, priors)
    space = _space(model, priors)
    data = [as_csd(s, f"spectra[{i}]") for i, s in enumerate(spectra)]
    if not data:
        raise ValueError("Invalid value for 'spectra': expected at least one spectrum, got none.")
    freqs = data[0].freqs
    for i, d in enumerate(data[1:], 1):
        if (
            d.freqs.shape != freqs.shape
            or not bool(torch.allclose(d.freqs, freqs))
            or d.n_channels != data[0].n_channels
        ):
            raise ValueError(f"Invalid value for 'spectra[{i}]': its frequencies or channels differ from spectra[0]'s.")
    forward = _forward(model, data[0], mode)
    ys = torch.stack([d.data for d in data])
    q = torch.stack([component(d.data) for d in data])
    if device is not None:
        ys, q = ys.to(device), q.to(device)
    jacobian = "finite_difference" if mode == "spm" else "autodiff"
    posteriors = variational_laplace_batch(
        forward,
        ys,
        space.prior_mean_vector(),
        torch.diag(space.prior_var_vector()),
        precision_components=q,
        jacobian=jacobian,
        init=init,
        labels=space.vector_labels(),
        vectorize=getattr(model, "batchable", True) and getattr(model, "vmap_jacobians", True) and mode == "exact",
        model_name=name,
        **options,
    )
    natural = model.natural_units() if hasattr(model, "natural_units") else {}
    return [p.with_(freqs=freqs, natural=natural) for p in posteriors]


def fit_spectrum(
    spectrum: Any,
    model: Any = "tcm",
    *,
    priors: ParamSpace | ParameterSet | None = None,
    mode: str = "exact",
    weighting: str | Sequence[str] = "spm",
    n_starts: int = 1,
    seed: int | None = 0,
    init: Posterior | Any = None,
    **options: Any,
) -> Posterior:
    """Fit a neural mass model to a spectrum by variational Laplace.

    Parameters
    ----------
    spectrum : CSD or (freqs, values)
        The data: a :class:`~thalia.spectra.CSD`, or frequencies (Hz) with values (F,) (one PSD),
        (F, n) or (F, n, n) (complex CSD).
    model : {"tcm", "cmc", "cmm_nmda"} or model instance
        For ``"cmc"``/``"cmm_nmda"`` with SPM priors (``priors=read_spm_parameters(...)``) the model is
        sized from them.
    priors : ParamSpace or ParameterSet, optional
        Prior means and variances (default: the model's).
    mode : {"exact", "spm"}
        ``"exact"``: exact Jacobians (automatic differentiation through the fixed point, the delay
        operator and the spectral model) and the model's own delay operator. ``"spm"``: SPM's spectral
        mode and finite-difference parameter Jacobians, reproducing ``spm_nlsi_GN`` on ``spm_csd_mtf``.
    weighting : {"spm", "relative"} or sequence of them
        Precision component of the data: ``"spm"`` (SPM's :func:`~thalia.inference.csd_component`;
        the fit follows the peaks) or ``"relative"`` (:func:`~thalia.inference.noise.relative_component`;
        relative errors weigh alike at every frequency, as in a fit of the log spectrum — for the 1/f shape).
        A sequence fits in stages, each warm-started from the previous stage's posterior:
        ``("spm", "relative")`` first finds the peaks, then the shape of the whole log spectrum (from the
        prior mean alone the relative fit of a resting EEG spectrum stalls in a local optimum without the
        alpha peak). F, trace and status are the last stage's.
    n_starts : int
        Starts: the prior mean (or ``init``) and ``n_starts − 1`` draws around it (±0.5 prior SD),
        fitted together in one batch; the posterior with the highest F is returned.
    seed : int, optional
        Seed of the extra starts.
    init : Posterior or array_like, optional
        Warm start (e.g. the posterior of a previous session or a neighbouring spectrum).
    **options
        Passed to :func:`~thalia.inference.variational_laplace`: ``noise="student_t"`` (robust),
        ``hE``, ``hC``, ``max_iter``, ``tol``, ``beta``, ``verbose``.

    Returns
    -------
    Posterior
        With ``F``, ``mean``, ``cov``, ``converged``, ``explained_variance``, ``predicted`` (the model CSD
        at the posterior mean) and ``summary()``.
    """
    n_starts = check_positive_int("n_starts", n_starts)
    stages = (weighting,) if isinstance(weighting, str) else tuple(weighting)
    for stage in stages or (None,):
        check_option("weighting", stage, tuple(WEIGHTINGS))
    model_, _ = _model(model, priors)
    space = _space(model_, priors)
    starts = _starts(space, init, n_starts, seed)
    data = as_csd(spectrum)
    posteriors = fit_spectra(
        [data] * n_starts, model_, priors=space, mode=mode, weighting=stages[0], init=starts, **options
    )
    best = max(range(n_starts), key=lambda k: (np.nan_to_num(posteriors[k].F, nan=-np.inf), -k))
    posterior = posteriors[best]
    if n_starts > 1:
        values = ", ".join(f"{p.F:.2f}" for p in posteriors)
        logger.info("fit_spectrum: free energies of %d starts: %s; best start %d", n_starts, values, best)
        posterior = posterior.with_(message=f"{posterior.message}; best of {n_starts} starts (F: {values})")
    for previous, stage in zip(stages, stages[1:], strict=False):
        done = f"{previous} weighting: {posterior.status.value} after {posterior.iterations} iterations"
        (posterior,) = fit_spectra(
            [data], model_, priors=space, mode=mode, weighting=stage, init=[posterior], **options
        )
        posterior = posterior.with_(message=f"{posterior.message}; warm-started from the fit with {done}")
    return posterior


def _starts(space: ParamSpace, init: Any, n_starts: int, seed: int | None) -> list:
    generator = torch.Generator().manual_seed(seed) if seed is not None else torch.Generator()
    centre = init.mean if isinstance(init, Posterior) else init
    centre = space.prior_mean_vector() if centre is None else torch.as_tensor(centre, dtype=torch.float64)
    sd = space.prior_var_vector().sqrt()
    extra = [
        centre + START_SPREAD * sd * torch.randn(space.size, generator=generator, dtype=torch.float64)
        for _ in range(n_starts - 1)
    ]
    return [init, *extra]

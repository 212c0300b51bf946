"""The TCM fitted to a circuit's LFP spectrum: variational Laplace on the log spectrum.

Why the log spectrum. The question the bridge asks is whether the mass model reproduces the
*shape* of the circuit's spectrum — its 1/f slope and its peaks — over 4–90 Hz. A fit to the linear
CSD (SPM's, :func:`thalia.inference.fit_spectrum`) is dominated by the few most powerful
frequencies; on the log scale every frequency counts alike, and the Welch estimate's noise is
homoscedastic there (variance ≈ 1/K for K averaged segments). The data and the model are both the
natural log of the auto-spectrum minus its mean over the band (the overall level is arbitrary in
the mass model), so the posterior's ``explained_variance`` is the fraction of the variance of the
log spectrum the fit explains.

Noise. One precision component (the identity). The sampling variance of a Welch estimate's log is
known: ψ'(K_eff) (trigamma) for K Hann segments with 50 % overlap, K_eff = K / (1 + 2·0.167²), 0.167
being the correlation of neighbouring Hann segments at 50 % overlap. The log-precision's hyperprior is
centred there, with SPM's variance 1/128, so the credible intervals are those of the Welch noise.
(SPM's default mean 8 would assume a residual SD near 0.02, far below the Welch noise of a 60 s
run, and make every posterior overconfident; a loose hyperprior lets the fit call its misfit noise
and stop short: 86 % of the variance instead of 90 % on a 20 s run of the circuit of commit ee7aaff.)

Two stages. VL from the prior mean under the Welch noise level stops in a poorer local optimum
(F 138 nats lower on a 60 s run of the circuit of commit ee7aaff, seed 1) than VL started where a
data-dominated fit (SPM's hyperprior mean 8) ended. :func:`fit_tcm` therefore runs the
data-dominated fit first, only to find the basin, and returns the posterior of the second fit,
started there, under the Welch noise level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from thalia._validation import check_option, check_positive_float, check_positive_int
from thalia.bridge.circuit import CircuitLFP
from thalia.bridge.mapping import bridge_model, circuit_priors
from thalia.inference import Posterior, variational_laplace
from thalia.params import ParameterSet, ParamSpace
from thalia.spectra import CSD, aperiodic_fit, band_peak
from thalia.spiking.gamma import BANDS as GAMMA_BANDS

#: Band of the fit, Hz (the issue's 4–90 Hz).
FIT_BAND_HZ = (4.0, 90.0)
#: Hyperprior of the noise log-precision: mean of the first (basin-finding) stage, variance.
SEARCH_LOG_PRECISION = 8.0
NOISE_HYPER_VAR = 1 / 128
#: Variance inflation of a Welch average over Hann segments with 50 % overlap: 1 + 2·0.167².
HANN_OVERLAP_INFLATION = 1.0 + 2 * 0.167**2


@dataclass(frozen=True)
class SpectralFit:
    """A TCM fitted to one channel's log spectrum.

    Attributes
    ----------
    posterior : Posterior
        Over the model's parameter vector; ``data`` and ``predicted`` are the centred natural-log
        spectra, so ``posterior.explained_variance`` is the variance of the log spectrum explained.
    freqs : ndarray, (F,)
        Frequencies of the fit, Hz.
    power : ndarray, (F,)
        The data (auto-spectrum of the channel).
    model : TCM
    space : ParamSpace
        The priors the fit used.
    n_segments : int, optional
        Segments of the Welch estimate (its noise level).
    """

    posterior: Posterior
    freqs: np.ndarray
    power: np.ndarray
    model: object
    space: ParamSpace
    n_segments: int | None = None

    @property
    def explained_variance(self) -> float:
        """Fraction of the variance of the log spectrum over the fitted band that the fit explains."""
        return self.posterior.explained_variance

    def parameters(self) -> ParameterSet:
        """The posterior mean as a parameter set of the model."""
        return ParameterSet.from_vector(self.space, self.posterior.mean)

    def fitted_power(self, freqs=None) -> np.ndarray:
        """The fitted spectrum at ``freqs`` (default: the data's), on the data's scale (the model's
        log spectrum shifted by the data's mean log power over the fitted band)."""
        model_at = log_power(self.model, self.parameters(), self.freqs)
        shift = np.mean(np.log(self.power)) - np.mean(model_at)
        grid = self.freqs if freqs is None else np.asarray(freqs, dtype=float)
        return np.exp(log_power(self.model, self.parameters(), grid) + shift)

    def gamma_peaks(self, bands=None, *, tolerance_hz: float = 5.0) -> list[dict]:
        """The circuit's gamma peaks and the fitted model's peak nearest each (see :func:`matched_peaks`)."""
        return matched_peaks(self, bands, tolerance_hz=tolerance_hz)


def log_power(model, params: ParameterSet, freqs) -> np.ndarray:
    """Natural log of the model's first auto-spectrum at ``freqs`` (Hz)."""
    csd = model.csd(params, torch.as_tensor(np.asarray(freqs, dtype=float)))
    return np.log(csd.psd[:, 0].detach().numpy())


def centred_log_model(model, freqs: np.ndarray):
    """θ -> the model's log auto-spectrum at ``freqs`` (Hz) minus its mean (the fits' forward model)."""
    spectrum_fn = model.spectrum_function(torch.as_tensor(freqs))

    def forward(theta):
        log_s = torch.log(spectrum_fn(theta)[:, 0, 0].real)
        return log_s - log_s.mean()

    return forward


def centred_log(power: np.ndarray) -> np.ndarray:
    """The log of a spectrum minus its mean (the fits' data)."""
    log_p = np.log(power)
    return log_p - log_p.mean()


def welch_log_precision(n_segments: int) -> float:
    """ln of 1 / var(ln P̂) for a Welch average of ``n_segments`` Hann segments with 50 % overlap."""
    n_segments = check_positive_int("n_segments", n_segments)
    return -math.log(float(special.polygamma(1, n_segments / HANN_OVERLAP_INFLATION)))


def fit_tcm(
    spectrum: CSD,
    n_segments: int,
    *,
    channel: str | None = None,
    priors: ParamSpace | None = None,
    band_hz: tuple[float, float] = FIT_BAND_HZ,
    init: Posterior | None = None,
    **options,
) -> SpectralFit:
    """Fit the bridge's TCM (:func:`~thalia.bridge.mapping.bridge_model`) to one channel's log spectrum.

    Parameters
    ----------
    spectrum : CSD
        A Welch estimate (Hann window, 50 % overlap), e.g. :meth:`CircuitLFP.csd`; its frequencies
        must cover ``band_hz``.
    n_segments : int
        Segments the Welch estimate averaged (sets the noise level, see the module doc).
    channel : str, optional
        Channel to fit (default: the only one).
    priors : ParamSpace, optional
        Default: the model's; :func:`~thalia.bridge.mapping.circuit_priors` sets them from the circuit.
    band_hz : (float, float)
        Frequencies fitted, Hz (default 4–90).
    init : Posterior, optional
        Warm start of the first stage (e.g. the fit of a baseline condition).
    **options
        Passed to :func:`thalia.inference.variational_laplace` (``max_iter``, ``tol``, ``verbose``…).
    """
    freqs, power = _channel(spectrum, channel, band_hz)
    model = bridge_model()
    space = model.space if priors is None else priors
    if not isinstance(space, ParamSpace) or not space.compatible(model.space):
        raise ValueError(f"Invalid value for 'priors': expected the bridge model's ParamSpace, got {priors!r}.")
    forward = centred_log_model(model, freqs)
    y = torch.as_tensor(centred_log(power))
    prior = (space.prior_mean_vector(), space.prior_var_vector())
    common = {"labels": space.vector_labels(), "hC": NOISE_HYPER_VAR, **options}
    search = variational_laplace(forward, y, *prior, hE=SEARCH_LOG_PRECISION, init=init, **common)
    posterior = variational_laplace(forward, y, *prior, hE=welch_log_precision(n_segments), init=search.mean, **common)
    posterior = posterior.with_(freqs=torch.as_tensor(freqs), model=model.name, natural=model.natural_units())
    return SpectralFit(posterior, freqs, power, model, space, n_segments)


def fit_circuit(
    lfp: CircuitLFP,
    *,
    priors: str | ParamSpace = "circuit",
    channel: str = "cortex",
    segment_s: float = 1.0,
    init: Posterior | None = None,
    **options,
) -> SpectralFit:
    """Fit the TCM to a circuit's LFP spectrum (Welch, ``segment_s`` segments) over 4–90 Hz.

    ``priors``: ``"circuit"`` (receptor time constants and delays from the circuit,
    :func:`~thalia.bridge.mapping.circuit_priors`), ``"default"`` (the TCM's) or a ParamSpace.
    Other options as :func:`fit_tcm`.
    """
    if isinstance(priors, str):
        check_option("priors", priors, ("circuit", "default"))
        priors = circuit_priors(lfp.brain) if priors == "circuit" else None
    spectrum = lfp.csd("region" if channel == "cortex" else "layers", segment_s=segment_s)
    return fit_tcm(spectrum, lfp.n_segments(segment_s), channel=channel, priors=priors, init=init, **options)


def _channel(spectrum: CSD, channel: str | None, band_hz) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(spectrum, CSD):
        raise ValueError(f"Invalid value for 'spectrum': expected a thalia.spectra.CSD, got {type(spectrum).__name__}.")
    if channel is None:
        if spectrum.n_channels != 1:
            raise ValueError(
                f"Invalid value for 'channel': the spectrum has {spectrum.n_channels} channels "
                f"{list(spectrum.channels)}; name the one to fit."
            )
        channel = spectrum.channels[0]
    check_option("channel", channel, spectrum.channels)
    lo, hi = (check_positive_float("band_hz", float(v)) for v in band_hz)
    freqs = spectrum.freqs.numpy()
    keep = (freqs >= lo) & (freqs <= hi)
    if hi <= lo or keep.sum() < 8 or freqs[0] > lo + 1.0 or freqs[-1] < hi - 1.0:
        raise ValueError(
            f"Invalid value for 'band_hz': expected (low, high) Hz inside the spectrum's {freqs[0]:g}–{freqs[-1]:g} Hz "
            f"with at least 8 frequencies, got {band_hz!r}."
        )
    power = spectrum.psd[:, spectrum.channels.index(channel)].numpy()[keep]
    return freqs[keep], power


def matched_peaks(
    fit: SpectralFit, bands=None, *, tolerance_hz: float = 5.0, resolution_hz: float = 0.25
) -> list[dict]:
    """For each gamma band (default: the spiking package's low and high gamma) with a peak in the
    data (:func:`thalia.spectra.band_peak` over the aperiodic fit of the fitted band), the fitted
    model's peak within ``tolerance_hz`` of it (searched on a ``resolution_hz`` grid with the same
    aperiodic-fit definition, noise test off: the model spectrum is exact).

    Returns rows: band, data peak (Hz), model peak (Hz or None), distance (Hz or None).
    """
    bands = GAMMA_BANDS if bands is None else bands
    band = (float(fit.freqs[0]), float(fit.freqs[-1]))
    data_fit = aperiodic_fit(fit.freqs, fit.power, freq_range=band)
    grid = np.arange(band[0], band[1] + resolution_hz / 2, resolution_hz)
    model_power = fit.fitted_power(grid)
    model_fit = aperiodic_fit(grid, model_power, freq_range=band)
    rows = []
    for name, edges in bands.items():
        data_peak = band_peak(fit.freqs, fit.power, edges, aperiodic=data_fit)
        if not data_peak.present:
            continue
        window = (max(band[0], data_peak.freq_hz - tolerance_hz), min(band[1], data_peak.freq_hz + tolerance_hz))
        model_peak = band_peak(grid, model_power, window, aperiodic=model_fit, noise_z=0.0)
        distance = abs(model_peak.freq_hz - data_peak.freq_hz) if model_peak.present else None
        rows.append({"band": name, "data_peak_hz": data_peak.freq_hz, "model_peak_hz": model_peak.freq_hz,
                     "distance_hz": distance})  # fmt: skip
    return rows

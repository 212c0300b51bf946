"""Parameter recovery of the spectral inversion: do the 90 % credible intervals cover the truth?

Each test simulates CSDs from known parameters θ, adds observation noise of the kind the likelihood
assumes, inverts all data sets in ONE batched ``fit_spectra`` call and pools, over data sets and free
parameters, how often ``Posterior.credible_interval(0.9)`` contains the true value.

The noise matches the model of the inversion: real and imaginary parts Gaussian with covariance
exp(−h)·Q⁻¹, Q = ``csd_component`` of the clean CSD (for one channel Q⁻¹ = S(w)² + max S²/32, i.e.
multiplicative noise with a floor) and h = 8, the hyperprior mean hE of the fits: about 1.8 % of the
spectrum. With noise far from exp(−hE) the tight hyperprior on h (variance 1/128) would pin the noise
precision at the wrong value and the intervals would be miscalibrated by construction.

Findings behind the choice of draws (CMC, 24 data sets, 45 frequencies):

* θ = prior mean + 0.5·prior SD·z, fitted from the prior mean: coverage 0.92 (test below);
* θ drawn from the prior itself and fitted from the prior mean: coverage 0.78. Not a calibration
  error: started at the true θ the same data give 0.90 (test below), and 12 of the 24 fits from
  the prior mean end 4 to 32 nats of free energy below the fits started at the truth, i.e. in local
  optima. The lead-field gain L (prior N(1, 64)) is also identified only up to its sign for one
  channel (the CSD depends on L²), so negative true gains are never covered.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from thalia.inference import csd_component, fit_spectra
from thalia.mass import CMC, TCM

LEVEL = 0.9
MIN_COVERAGE = 0.8
#: Above this, the intervals of draws from the prior itself would be too wide to be calibrated.
MAX_COVERAGE = 0.97
#: Log-precision of the simulated noise: the fits' hyperprior mean hE (SPM's default, 8).
NOISE_LOG_PRECISION = 8.0
CMC_FREQS = np.arange(4.0, 49.0)  # 45 frequencies, 4..48 Hz
TCM_FREQS = np.arange(1.0, 91.0)  # 90 frequencies, 1..90 Hz


def draw_parameters(space, n: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    """(n, P) parameter vectors: prior mean + spread·prior SD·z (fixed parameters stay at their means)."""
    z = torch.randn(n, space.size, generator=generator, dtype=torch.float64)
    return space.prior_mean_vector() + spread * space.prior_var_vector().sqrt() * z


def add_noise(csd: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The CSD (F, n, n) plus noise with real and imaginary parts ~ N(0, exp(−h)·Q⁻¹), Q = csd_component(csd)."""
    cov = torch.linalg.inv(csd_component(csd)[0])
    root = torch.linalg.cholesky((cov + cov.T) / 2)
    white = torch.randn(2, root.shape[0], generator=generator, dtype=torch.float64)
    noise = math.exp(-NOISE_LOG_PRECISION / 2) * white @ root.T
    return csd + torch.complex(noise[0], noise[1]).reshape(csd.shape)


def simulate(model, freqs, n: int, spread: float, seed: int) -> tuple[torch.Tensor, list]:
    """True parameters (n, P) and noisy spectra [(freqs, CSD)] of ``model``."""
    generator = torch.Generator().manual_seed(seed)
    thetas = draw_parameters(model.space, n, spread, generator)
    forward = model.spectrum_function(freqs)
    clean = [forward(theta) for theta in thetas]
    finite = [bool(torch.isfinite(torch.view_as_real(y)).all()) for y in clean]
    assert all(finite), f"{finite.count(False)} of {n} simulated spectra are not finite"
    return thetas, [(freqs, add_noise(y, generator)) for y in clean]


def coverage(posteriors, thetas: torch.Tensor) -> float:
    """Fraction of (data set, free parameter) pairs whose credible interval contains the truth."""
    inside = []
    for posterior, theta in zip(posteriors, thetas, strict=True):
        lower, upper = posterior.credible_interval(LEVEL)
        free = posterior.free()
        inside.append(((theta >= lower) & (theta <= upper))[free])
    return float(torch.cat(inside).double().mean())


def assert_converged(posteriors) -> None:
    failed = [k for k, p in enumerate(posteriors) if not p.converged]
    assert not failed, f"{len(failed)} of {len(posteriors)} fits did not converge: data sets {failed}"


def test_cmc_intervals_cover_truth_near_prior():
    """CMC, 24 data sets, θ = prior mean + 0.5·prior SD·z, fitted from the prior mean (observed: 0.918)."""
    thetas, spectra = simulate(CMC(), CMC_FREQS, 24, 0.5, seed=1)
    posteriors = fit_spectra(spectra, "cmc", hE=NOISE_LOG_PRECISION)
    assert_converged(posteriors)
    assert coverage(posteriors, thetas) >= MIN_COVERAGE


def test_cmc_intervals_calibrated_at_the_mode():
    """CMC, 24 data sets with θ drawn from the prior itself, each fit started at its true θ: the
    Laplace covariance at the mode is calibrated (observed: 0.900), neither too narrow nor too wide."""
    thetas, spectra = simulate(CMC(), CMC_FREQS, 24, 1.0, seed=0)
    posteriors = fit_spectra(spectra, "cmc", hE=NOISE_LOG_PRECISION, init=list(thetas))
    assert_converged(posteriors)
    assert MIN_COVERAGE <= coverage(posteriors, thetas) <= MAX_COVERAGE


def test_tcm_intervals_cover_truth():
    """TCM, 20 data sets with θ drawn from the prior itself (47 free parameters, 90 frequencies),
    fitted from the prior mean (observed: 0.897)."""
    thetas, spectra = simulate(TCM(), TCM_FREQS, 20, 1.0, seed=0)
    posteriors = fit_spectra(spectra, "tcm", hE=NOISE_LOG_PRECISION)
    assert_converged(posteriors)
    assert MIN_COVERAGE <= coverage(posteriors, thetas) <= MAX_COVERAGE

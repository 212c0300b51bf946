"""thalia's variational Laplace against SPM's ``spm_nlsi_GN`` on SPM's own CMC inversion.

SPM inverted CMC (one source, 28 free parameters) on a noise-free CSD made with known parameters
(``cmc_nlsi_*``, SPM26 under Octave): F = 300.25661, 7 iterations, Eh = 8.154. thalia runs the same
scheme on the same data, priors and hyperpriors, in two ways:

* ``mode="spm"``: SPM's spectral mode (its forward-difference flow Jacobian and delay series) and
  finite-difference parameter Jacobians — the same computation, so the numbers agree to ~1e-8;
* ``mode="exact"`` (thalia's default): exact Jacobians by automatic differentiation and the exact
  delay operator. The model differs from SPM's by SPM's approximations (series truncated at 1e-6,
  forward differences of step e⁻⁸), so F differs by ~4e-4 nats and the means by ~2e-4 prior SD.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thalia.inference import fit_spectrum
from thalia.mass import spm

DATA = Path(__file__).parent / "data" / "spm"
SUMMARY = json.loads((DATA / "cmc_nlsi_summary.json").read_text())


@pytest.fixture(scope="module")
def problem():
    priors = spm.read_spm_parameters(DATA / "cmc_nlsi_params.csv", "prior_mean")
    spm_mean = spm.read_spm_parameters(DATA / "cmc_nlsi_params.csv", "Ep").to_vector()
    fit = np.genfromtxt(DATA / "cmc_nlsi_fit.csv", delimiter=",", names=True)
    spectrum = (fit["Hz"], fit["data_re"] + 1j * fit["data_im"])
    return priors, spm_mean, spectrum


@pytest.fixture(scope="module", params=["spm", "exact"])
def fitted(request, problem):
    priors, spm_mean, spectrum = problem
    return request.param, fit_spectrum(spectrum, "cmc", priors=priors, mode=request.param), priors, spm_mean


def _deviation_in_prior_sd(posterior, priors, spm_mean):
    sd = priors.space.prior_var_vector().sqrt()
    free = sd > 0
    return ((posterior.mean - spm_mean)[free] / sd[free]).abs()


def test_free_energy_and_its_parts_match_spm(fitted):
    mode, posterior, _, _ = fitted
    tol = 1e-6 if mode == "spm" else 1e-2
    assert posterior.converged
    assert posterior.F == pytest.approx(SUMMARY["F"], abs=tol)  # the issue asks for 1 nat
    assert posterior.L == pytest.approx(SUMMARY["L"], abs=tol)
    assert float(posterior.noise_log_precision[0]) == pytest.approx(SUMMARY["Eh"], abs=1e-4)


def test_posterior_means_match_spm(fitted):
    mode, posterior, priors, spm_mean = fitted
    deviation = _deviation_in_prior_sd(posterior, priors, spm_mean)
    assert float(deviation.max()) < (1e-6 if mode == "spm" else 1e-3)  # the issue asks for 0.1 prior SD


def test_posterior_covariance_matches_spm(fitted):
    mode, posterior, priors, _ = fitted
    labels = priors.space.vector_labels()
    index = [labels.index(name) for name in SUMMARY["Cp_names"]]
    cov = posterior.cov[index][:, index].numpy()
    expected = np.asarray(SUMMARY["Cp"])
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.abs(cov - expected).max() / scale.max() < (1e-5 if mode == "spm" else 5e-3)


def test_iterations_follow_spm_log(fitted):
    mode, posterior, _, _ = fitted
    assert posterior.iterations == SUMMARY["iterations"]
    for ours, theirs in zip(posterior.trace, SUMMARY["iteration_log"], strict=True):
        assert ours["accepted"] == bool(theirs["accepted"])
        assert ours["F_gain"] == pytest.approx(theirs["F_minus_F0"], rel=2e-3, abs=2e-3)
        assert ours["dF_predicted"] == pytest.approx(theirs["dF_predicted"], rel=2e-3)


def test_prediction_matches_spm_posterior_prediction(fitted, problem):
    _, posterior, _, _ = fitted
    fit = np.genfromtxt(DATA / "cmc_nlsi_fit.csv", delimiter=",", names=True)
    predicted = posterior.predicted[:, 0, 0].real.numpy()
    assert np.abs(predicted / fit["post_pred_re"] - 1).max() < 1e-4
    assert posterior.explained_variance > 0.9999
    assert torch.equal(posterior.freqs, torch.as_tensor(fit["Hz"], dtype=torch.float64))


def test_summary_gives_natural_units(fitted):
    _, posterior, priors, _ = fitted
    labels = priors.space.vector_labels()
    k = labels.index("T(1,3)")
    lo, hi = posterior.credible_interval(0.9)
    line = next(row for row in posterior.summary().splitlines() if row.startswith("T(1,3)"))
    value = 16.0 * np.exp(float(posterior.mean[k]))  # SPM's CMC time constant 16 ms · exp(T)
    assert f"{value:.4g} ms" in line
    assert f"[{16.0 * np.exp(float(lo[k])):.4g}, {16.0 * np.exp(float(hi[k])):.4g}]" in line

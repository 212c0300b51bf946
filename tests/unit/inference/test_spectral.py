"""fit_spectrum / fit_spectra: the spectral front end of the inversion (CMC, for speed)."""

from __future__ import annotations

import pytest
import torch

from thalia.inference import Status, fit_spectra, fit_spectrum
from thalia.mass import CMC
from thalia.spectra import CSD

F64 = torch.float64
FREQS = torch.arange(4.0, 49.0, dtype=F64)


@pytest.fixture(scope="module")
def synthetic():
    model = CMC()
    mean, sd = model.space.prior_mean_vector(), model.space.prior_var_vector().sqrt()
    g = torch.Generator().manual_seed(2)
    truth = mean + 0.7 * sd * torch.randn(len(mean), generator=g, dtype=F64)
    clean = model.spectrum_function(FREQS)(truth)
    noisy = clean * (1 + 0.02 * torch.randn(len(FREQS), 1, 1, generator=g, dtype=F64))
    return model, truth, noisy


@pytest.fixture(scope="module")
def posterior(synthetic):
    _, _, noisy = synthetic
    return fit_spectrum((FREQS, noisy[:, 0, 0].real), "cmc")


def test_fit_explains_the_spectrum(posterior, synthetic):
    _, _, noisy = synthetic
    assert posterior.converged and posterior.status is Status.CONVERGED
    assert posterior.explained_variance > 0.99
    assert posterior.predicted.shape == (len(FREQS), 1, 1)
    relative = (posterior.predicted - noisy).abs() / noisy.abs()
    assert float(relative.max()) < 0.1  # the data carry 2 % noise
    assert posterior.model == "cmc" and posterior.labels[7] == "T(1,2)"


def test_csd_input_equals_array_input(posterior, synthetic):
    _, _, noisy = synthetic
    again = fit_spectrum(CSD(FREQS, noisy, ("lfp",)), CMC())
    assert again.F == pytest.approx(posterior.F, abs=1e-9)


def test_warm_start_and_multi_start(posterior, synthetic):
    _, _, noisy = synthetic
    warm = fit_spectrum((FREQS, noisy), "cmc", init=posterior)
    assert warm.iterations < posterior.iterations and warm.F >= posterior.F - 0.1
    multi = fit_spectrum((FREQS, noisy), "cmc", n_starts=3, seed=1)
    assert multi.F >= posterior.F - 1e-9 and "best of 3 starts" in multi.message


def test_batched_fits_equal_single_fits(posterior, synthetic):
    _, _, noisy = synthetic
    batch = fit_spectra([(FREQS, noisy), (FREQS, 1.5 * noisy)], "cmc")
    assert batch[0].F == pytest.approx(posterior.F, abs=1e-6)
    single = fit_spectrum((FREQS, 1.5 * noisy), "cmc")
    assert batch[1].F == pytest.approx(single.F, abs=1e-6)


def test_robust_noise_discounts_a_line_artefact(synthetic):
    """A 20-fold line at 20 Hz (a mains-like artefact): the Student-t fit follows the rest of the
    spectrum much more closely than the Gaussian fit, which bends towards the line."""
    _, _, noisy = synthetic
    spiked = noisy.clone()
    spiked[16] *= 20
    others = torch.arange(len(FREQS)) != 16

    def misfit(post):
        return float(((post.predicted - noisy).abs() / noisy.abs())[others].max())

    gaussian = fit_spectrum((FREQS, spiked), "cmc")
    robust = fit_spectrum((FREQS, spiked), "cmc", noise="student_t")
    assert misfit(robust) < 0.1
    assert misfit(robust) < 0.5 * misfit(gaussian)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "tmc"}, "'model': allowed 'tcm', 'cmc', 'cmm_nmda'"),
        ({"mode": "fast"}, "'mode'"),
        ({"n_starts": 0}, "'n_starts'"),
        ({"spectrum": [1, 2, 3]}, "'spectrum'"),
        ({"spectrum": (FREQS, torch.ones(len(FREQS), 2, 3))}, "'spectrum' values"),
        ({"spectrum": (FREQS, torch.ones(len(FREQS), 2, 2))}, "2 channel"),
        ({"priors": "flat"}, "'priors'"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"spectrum": (FREQS, torch.ones(len(FREQS))), "model": "cmc", **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_spectrum(args.pop("spectrum"), **args)

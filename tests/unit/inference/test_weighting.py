"""The spectral fit's data weighting: SPM's precision or the relative one, and staged fits."""

from __future__ import annotations

import pytest
import torch

from thalia.inference import fit_spectrum
from thalia.inference.noise import csd_component, relative_component
from thalia.mass import CMC


def test_relative_component_is_the_inverse_sampling_variance():
    power = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    q = relative_component(power.to(torch.complex128))
    assert torch.allclose(q[0], torch.diag(1.0 / power**2))
    csd = torch.tensor([[[4.0, 1.0], [1.0, 1.0]]], dtype=torch.complex128)
    assert torch.allclose(
        torch.diagonal(relative_component(csd)[0]), torch.tensor([1 / 16, 1 / 4, 1 / 4, 1.0]).double()
    )
    # SPM's: 1 / (S² + max S²/32) — the same on the peak (up to 1 + 1/32), flat far below it
    spm = torch.diagonal(csd_component(power.to(torch.complex128))[0])
    assert float(spm[0]) == pytest.approx(1 / (16 * (1 + 1 / 32)))
    assert float(spm[2]) == pytest.approx(1 / (0.0625 + 0.5), rel=1e-12)
    with pytest.raises(ValueError, match=r"relative weighting needs auto-spectra > 0"):
        relative_component(torch.tensor([1.0, 0.0], dtype=torch.complex128))


def test_staged_fit_warm_starts_the_second_stage():
    model = CMC()
    freqs = torch.arange(4.0, 49.0, dtype=torch.float64)
    truth = model.space.prior_mean_vector() + 0.1 * model.space.prior_var_vector().sqrt()
    spectrum = (freqs, model.spectrum_function(freqs)(truth))
    first = fit_spectrum(spectrum, "cmc", weighting="spm", max_iter=4)
    staged = fit_spectrum(spectrum, "cmc", weighting=("spm", "relative"), max_iter=4)
    relative = fit_spectrum(spectrum, "cmc", weighting="relative", max_iter=4, init=first)
    assert "warm-started from the fit with spm weighting" in staged.message
    assert staged.F == pytest.approx(relative.F, rel=1e-10)  # stage 2 = a relative fit from stage 1's posterior
    assert torch.allclose(staged.mean, relative.mean)
    with pytest.raises(ValueError, match=r"Invalid value for 'weighting': allowed 'spm', 'relative', got 'log'"):
        fit_spectrum(spectrum, "cmc", weighting=("spm", "log"))

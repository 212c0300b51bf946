"""The inversion on a GPU gives the CPU's numbers (runs only where CUDA is present)."""

from __future__ import annotations

import pytest
import torch

from thalia.inference import fit_spectra
from thalia.mass import CMC

pytestmark = pytest.mark.gpu


def test_cmc_batch_fit_on_cuda_matches_cpu():
    model = CMC()
    freqs = torch.arange(4.0, 49.0, dtype=torch.float64)
    mean, sd = model.space.prior_mean_vector(), model.space.prior_var_vector().sqrt()
    g = torch.Generator().manual_seed(5)
    spectra = [
        (
            freqs,
            model.spectrum_function(freqs)(mean + 0.3 * sd * torch.randn(len(mean), generator=g, dtype=torch.float64)),
        )
        for _ in range(4)
    ]
    cpu = fit_spectra(spectra, "cmc")
    gpu = fit_spectra(spectra, "cmc", device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        assert b.mean.device.type == "cuda"
        assert b.F == pytest.approx(a.F, abs=1e-6)
        assert torch.allclose(b.mean.cpu(), a.mean, atol=1e-6)

"""Batched parameter Jacobians (one vmap over fit × direction pairs) equal the one-fit-at-a-time ones.

Guards against wrong batched derivatives: in PyTorch 2.13 nesting a vmap over fits around forward-mode
Jacobians returns wrong rows for these models, which is why the batch is flattened into pairs."""

from __future__ import annotations

import pytest
import torch

from thalia.inference import fit_spectra, fit_spectrum
from thalia.inference.forward import ForwardJacobian
from thalia.inference.vl import free_basis
from thalia.mass import CMC, CMMNMDA

FREQS = torch.arange(4.0, 49.0, dtype=torch.float64)


@pytest.mark.parametrize("model", [CMC(), CMMNMDA()], ids=repr)
def test_batched_jacobians_equal_single_ones(model):
    basis = free_basis(torch.diag(model.space.prior_var_vector()))
    g = torch.Generator().manual_seed(4)
    sd = model.space.prior_var_vector().sqrt()
    thetas = model.space.prior_mean_vector() + 0.3 * sd * torch.randn(
        6, model.space.size, generator=g, dtype=torch.float64
    )
    engine = ForwardJacobian(model.spectrum_function(FREQS))
    f, J = engine(thetas, basis)
    assert engine.vectorize  # the batch really was vectorised
    for k, theta in enumerate(thetas):
        f1, J1 = engine(theta[None], basis)
        assert torch.allclose(f[k], f1[0], rtol=1e-12, atol=1e-14 * float(f1.abs().max()))
        assert torch.allclose(J[k], J1[0], rtol=1e-10, atol=1e-12 * float(J1.abs().max()))


def test_batched_fits_equal_single_fits():
    model = CMC()
    sd = model.space.prior_var_vector().sqrt()
    g = torch.Generator().manual_seed(6)
    spectra = [
        (
            FREQS,
            model.spectrum_function(FREQS)(
                model.space.prior_mean_vector()
                + 0.4 * sd * torch.randn(model.space.size, generator=g, dtype=torch.float64)
            ),
        )
        for _ in range(3)
    ]
    batch = fit_spectra(spectra, "cmc")
    for spectrum, post in zip(spectra, batch, strict=True):
        single = fit_spectrum(spectrum, "cmc")
        assert post.F == pytest.approx(single.F, abs=1e-8)
        assert post.iterations == single.iterations

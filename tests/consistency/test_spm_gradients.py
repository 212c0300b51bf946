"""Parameter derivatives of SPM-model spectra: automatic differentiation against central differences.

The inversion (variational Laplace) needs dCSD/dθ; thalia takes it by automatic differentiation through
the closed-form Jacobian, the delay operator (for CMC the exact delayed modes, differentiated by one
Newton step at the converged roots) and the eigendecomposition of the modal transfer function.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thalia.mass import CMC, CMMNMDA
from thalia.params import ParameterSet

FREQS = torch.arange(4.0, 49.0, dtype=torch.float64)


def log_spectrum(model, vector):
    p = ParameterSet(model.space, model.space.unpack(vector))
    return torch.log(model.spectral_response(p, FREQS).csd[:, 0, 0].real)


@pytest.mark.parametrize("model", [CMC(), CMMNMDA(), CMMNMDA(expansion="fixed_point")], ids=repr)
def test_autodiff_gradient_matches_central_differences(model):
    theta = model.space.prior_mean_vector().clone()
    free = torch.nonzero(model.space.free_mask()).flatten()
    generator = torch.Generator().manual_seed(3)
    theta[free] += 0.3 * torch.randn(len(free), generator=generator, dtype=torch.float64)
    theta.requires_grad_(True)
    out = log_spectrum(model, theta)
    weights = torch.linspace(-1.0, 1.0, len(FREQS), dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * weights).sum(), theta)
    h = 1e-5
    checked = 0
    for k in free.tolist():
        step = torch.zeros_like(theta)
        step[k] = h
        with torch.no_grad():
            plus, minus = log_spectrum(model, theta + step), log_spectrum(model, theta - step)
        central = float(((plus - minus) * weights).sum() / (2 * h))
        if abs(central) < 1e-6:
            continue  # inert in the CSD (C, R) or numerically flat
        assert abs(float(grad[k]) - central) <= 1e-5 * max(1.0, abs(central)), model.space.vector_labels()[k]
        checked += 1
    assert checked >= 20
    assert np.isfinite(grad.numpy()).all()

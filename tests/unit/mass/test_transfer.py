"""Transfer-function kernels: the Schur reduction equals the dense solve, and both equal analytic cases."""

import math

import numpy as np
import pytest
import torch

from thalia.mass import TCM
from thalia.mass.transfer import transfer_dense, transfer_schur

FREQS = torch.arange(1.0, 91.0, dtype=torch.float64)


def test_dense_kernel_on_a_delayed_scalar_system():
    """dx/dt = a·x(t − d) + u: H(ω) = 1 / (iω − a e^{−iωd})."""
    a, d = -40.0, 0.003
    one = torch.ones(1, 1, dtype=torch.float64)
    H = transfer_dense(one * a, one, one, one * d, FREQS)
    w = 2 * math.pi * FREQS.numpy()
    expected = 1.0 / (1j * w - a * np.exp(-1j * w * d))
    np.testing.assert_allclose(H[:, 0, 0].numpy(), expected, rtol=1e-13)


def test_schur_kernel_equals_dense_on_random_structured_system():
    gen = torch.Generator().manual_seed(3)
    m, groups, k, p = 5, 3, 2, 4

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    a11, a12, a21, a22 = -50 + rnd(m), rnd(groups, m) * 10, rnd(groups, m, m) * 10, -30 - rnd(groups, m).abs() * 100
    d11 = rnd(m, m).abs() * 0.002
    self_delay = torch.diagonal(d11)
    b2, c1, c2 = rnd(groups, m, k), rnd(p, m), rnd(groups, p, m)
    H = transfer_schur(a11, a12, a21, a22, d11, self_delay, b2, c1, c2, FREQS)
    top = torch.cat([torch.diag(a11), *[torch.diag(r) for r in a12]], dim=1)
    bottom = torch.cat([a21.reshape(groups * m, m), torch.diag(a22.reshape(-1))], dim=1)
    A = torch.cat([top, bottom])
    n = m * (groups + 1)
    D = torch.zeros(n, n, dtype=torch.float64)
    for i in range(groups + 1):
        for j in range(groups + 1):
            D[i * m : (i + 1) * m, j * m : (j + 1) * m] = d11
    B = torch.cat([torch.zeros(m, k, dtype=torch.float64), b2.reshape(groups * m, k)])
    C = torch.cat([c1, *c2], dim=1)
    dense = transfer_dense(A, B, C, D, FREQS)
    torch.testing.assert_close(H, dense, rtol=1e-11, atol=1e-13 * float(dense.abs().max()))


@pytest.mark.parametrize(
    "model",
    [
        TCM(observe_conductances=True),
        TCM(
            3,
            extrinsic={"forward": [(0, 1), (1, 2)], "backward": [(2, 1)]},
            lead_field=np.random.default_rng(0).random((4, 3)),
            observe_conductances=True,
        ),
        TCM(n_inputs=2, observe_conductances=True),
    ],
    ids=["one", "three-sources-lead-field", "two-inputs"],
)
def test_tcm_schur_equals_dense(model):
    p = model.default_parameters()
    j = p["J"].clone()
    j[8:16] = np.log(0.3)  # observe the AMPA conductances too (exercises the g-block readout)
    p = p.replace(J=j)
    x = model.fixed_point(p).x
    schur = model.transfer_from_state(x, p, FREQS, method="schur")
    dense = model.transfer_from_state(x, p, FREQS, method="dense")
    torch.testing.assert_close(schur, dense, rtol=1e-10, atol=1e-12 * float(dense.abs().max()))


def test_conductance_observation_is_an_explicit_option():
    """By default only membrane potentials are observed (the conductance readout is skipped and a J
    weighting a conductance raises); with observe_conductances=True such a J changes the spectrum."""
    plain, observing = TCM(), TCM(observe_conductances=True)
    p = plain.default_parameters()
    torch.testing.assert_close(plain.csd(p, FREQS).data, observing.csd(p, FREQS).data, rtol=1e-12, atol=0)
    j = p["J"].clone()
    j[8:16] = np.log(0.3)
    with pytest.raises(ValueError, match=r"P\['J'\].*entries 8–55.*TCM\(observe_conductances=True\)"):
        plain.csd(p.replace(J=j), FREQS)
    moved = observing.csd(p.replace(J=j), FREQS).psd
    base = observing.csd(p, FREQS).psd
    assert float(((moved - base).abs() / base).max()) > 0.01

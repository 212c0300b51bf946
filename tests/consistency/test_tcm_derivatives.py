"""Exact derivatives, three ways: analytic block Jacobian, torch.func autodiff, finite differences.

Finite differences are only a cross-check here: central differences with step h have truncation
error O(h²·|f'''|) and rounding error O(ε·|f|/h); with h = 1e-5 on states of size ~50 and rates of
~10³ s⁻¹ both are ≲ 1e-5 relative, which sets the tolerance for those comparisons. Analytic vs
autodiff must agree to rounding (1e-12 relative).
"""

import numpy as np
import pytest
import torch

from thalia.mass import TCM
from thalia.params import ParameterSet

FREQS = torch.arange(1.0, 91.0, dtype=torch.float64)


def _central_jacobian(fun, x, h=1e-5):
    cols = []
    for k in range(x.numel()):
        e = torch.zeros_like(x)
        e[k] = h
        cols.append((fun(x + e) - fun(x - e)) / (2 * h))
    return torch.stack(cols, dim=-1)


def _models():
    two = TCM(2, extrinsic={"forward": [(0, 1)], "backward": [(1, 0)]})
    return [TCM(), TCM(firing="hard"), two, TCM(n_inputs=2, extras=("endo", "thi", "global", "T1"))]


@pytest.mark.parametrize("model", _models(), ids=["tcm", "hard", "two-source", "extras"])
def test_analytic_jacobian_equals_autodiff(model):
    p = model.default_parameters()
    gen = torch.Generator().manual_seed(0)
    x = model.initial_state() + 0.5 * torch.randn(model.n_states, generator=gen, dtype=torch.float64)
    u = model.zero_input(x)
    analytic = model.jacobian(x, p)
    auto = torch.func.jacfwd(lambda state: model.flow(state, u, p))(x)
    scale = float(auto.abs().max())
    assert float((analytic - auto).abs().max()) < 1e-12 * scale
    B = model.input_matrix(x, p)
    B_auto = torch.func.jacfwd(lambda inp: model.flow(x, inp, p))(u)
    torch.testing.assert_close(B, B_auto, rtol=0, atol=1e-12 * float(B_auto.abs().max()))


def test_jacobian_matches_central_differences(tcm):
    p = tcm.default_parameters()
    x = tcm.fixed_point(p).x.detach()
    u = tcm.zero_input(x)
    numeric = _central_jacobian(lambda s: tcm.flow(s, u, p), x)
    analytic = tcm.jacobian(x, p)
    assert float((numeric - analytic).abs().max()) < 1e-5 * float(analytic.abs().max())


def test_fixed_point_implicit_derivative_matches_resolving(tcm):
    """dx*/dθ from the implicit step equals finite differences of re-solved fixed points."""
    p = tcm.default_parameters()
    theta = p.to_vector()
    free = torch.nonzero(tcm.space.free_mask()).flatten()

    def x_star(th):
        return tcm.fixed_point(ParameterSet.from_vector(tcm.space, th)).x

    implicit = torch.autograd.functional.jacobian(x_star, theta)[:, free]
    numeric = _central_jacobian(x_star, theta, h=1e-5)[:, free]
    scale = float(numeric.abs().max())
    assert scale > 1e-3  # the fixed point does move with θ
    assert float((implicit - numeric).abs().max()) < 1e-5 * scale


def test_spectrum_gradient_forward_reverse_and_finite_differences(tcm):
    """dCSD/dθ through fixed point, Jacobian and transfer function: jacfwd = jacrev ≈ FD."""
    space = tcm.space
    theta = tcm.default_parameters().to_vector()
    free = torch.nonzero(space.free_mask()).flatten()

    def log_psd(th):
        return torch.log(tcm.csd_tensor(space.unpack(th), FREQS)[:, 0, 0].real)

    forward = torch.func.jacfwd(log_psd)(theta)[:, free]
    reverse = torch.func.jacrev(log_psd)(theta)[:, free]
    numeric = _central_jacobian(log_psd, theta, h=1e-5)[:, free]
    assert float((forward - reverse).abs().max()) < 1e-10 * float(forward.abs().max())
    assert float((forward - numeric).abs().max()) < 1e-5 * float(numeric.abs().max())


def test_eager_and_pure_paths_agree(tcm):
    p = tcm.default_parameters().replace(H=np.full((8, 8, 1), 0.1), CT=0.2)
    eager = tcm.csd(p, FREQS).data
    pure = tcm.csd_tensor(p.tensors(), FREQS)
    torch.testing.assert_close(eager, pure, rtol=1e-10, atol=0)


def test_vmap_batch_equals_one_by_one(tcm):
    space = tcm.space
    gen = torch.Generator().manual_seed(1)
    mean, sd = space.prior_mean_vector(), space.prior_var_vector().sqrt()
    thetas = mean + sd * torch.randn(6, space.size, generator=gen, dtype=torch.float64)
    batch = torch.func.vmap(lambda th: tcm.csd_tensor(space.unpack(th), FREQS))(thetas)
    for k in range(len(thetas)):
        single = tcm.csd(ParameterSet.from_vector(space, thetas[k]), FREQS).data
        torch.testing.assert_close(batch[k], single, rtol=1e-9, atol=0)


def test_a_fresh_model_works_first_inside_transforms():
    """The start-point expansion is computed at construction, not lazily inside vmap / jacfwd."""
    freqs = torch.arange(4.0, 48.0, dtype=torch.float64)
    for transform in (torch.func.vmap, torch.func.jacfwd):
        model = TCM()
        theta = model.space.prior_mean_vector()
        arg = theta.expand(2, -1).clone() if transform is torch.func.vmap else theta
        out = transform(lambda th, model=model: model.csd_tensor(model.space.unpack(th), freqs).real)(arg)
        assert bool(torch.isfinite(out).all())

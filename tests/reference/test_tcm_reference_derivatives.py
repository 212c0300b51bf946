"""The flow against the reference derivatives of tcm_model.md Part B §5.4.

Those vectors were computed by tcm_py and an independent re-implementation of the MATLAB equations
(agreeing to machine precision) at the tcm_py template state, u = 0, and are quoted to 4 decimals.
"""

import numpy as np
import pytest
import torch

from thalia.mass import TCM
from thalia.mass import tcm_constants as K

pytestmark = pytest.mark.reference

DV_MATLAB_LIKE = [115.9591, -0.0002, 517.6746, 166.4085, 362.9962, 187.4494, 491.9003, 343.2500]
DGE_MATLAB_LIKE = [0.0064, -0.0073, 0.0126, -0.0022, -0.0022, -0.0022, -0.0096, -0.0124]
DGN_MATLAB_LIKE = [-0.0004, 0.0002, -0.0003, 0, 0, 0, -0.0002, -0.0003]
DV_TCMPY = [0.5414, -348.9461, 2.2558, 0.6371, 1.4826, 0.8717, 2.5118, 1.6364]
DGE_SP_TCMPY = 2471.158
TOL = 1e-4  # the references carry 4 decimals


def _template_state() -> torch.Tensor:
    # (8 populations, 7 states) -> original flat order: population fastest, then state
    return torch.tensor(K.TEMPLATE_STATE.T.reshape(-1).copy(), dtype=torch.float64)


def _all_zero(model: TCM) -> dict:
    """'MATLAB-like' parameters: every log-parameter 0 (so exp = 1, including the A self-loop); the
    observation weights J do not enter the flow (and MATLAB resets J = 0 to -1000 anyway)."""
    return {name: np.zeros(model.space[name].shape) for name in model.space.names if name != "J"}


@pytest.mark.parametrize("firing", ["smooth", "hard"])
def test_matlab_like_parameters(firing):
    model = TCM(firing=firing)
    dx = model.flow(_template_state(), torch.zeros(1), model.parameters(_all_zero(model))).numpy()
    np.testing.assert_allclose(dx[0:8], DV_MATLAB_LIKE, atol=TOL)
    np.testing.assert_allclose(dx[8:16], DGE_MATLAB_LIKE, atol=TOL)
    np.testing.assert_allclose(dx[24:32], DGN_MATLAB_LIKE, atol=TOL)


@pytest.mark.parametrize("firing", ["smooth", "hard"])
def test_tcm_py_defaults(firing):
    """tcm_py's defaults: endo = 1 (extra SP AMPA drive 2e) and scale_NMDA = 1."""
    model = TCM(firing=firing, extras=("endo",))
    params = _all_zero(model) | {"endo": 1.0, "scale_NMDA": 1.0}
    dx = model.flow(_template_state(), torch.zeros(1), model.parameters(params)).numpy()
    np.testing.assert_allclose(dx[0:8], DV_TCMPY, atol=TOL)
    expected_ge = np.array(DGE_MATLAB_LIKE)
    expected_ge[1] = DGE_SP_TCMPY
    np.testing.assert_allclose(dx[8:16], expected_ge, atol=TOL)


def test_original_fixed_point_and_its_unstable_mode():
    """Part B §5.4: the MATLAB-like means have V* = [-51.64, -53.73, …] and a growing 55.5 Hz pair
    47.60 ± 348.5i s⁻¹ (smooth firing). thalia reproduces it — and warns it is unstable."""
    model = TCM()
    fixed = model.fixed_point(model.parameters(_all_zero(model)))
    v_star = fixed.x[:8].numpy()
    np.testing.assert_allclose(v_star, [-51.64, -53.73, -52.24, -53.11, -52.78, -51.94, -50.92, -51.68], atol=0.01)
    lead = fixed.leading_eigenvalue
    assert lead.real == pytest.approx(47.60, abs=0.01)
    assert abs(lead.imag) == pytest.approx(348.5, abs=0.1)
    assert not fixed.stable

"""ParamSpace / ParameterSet: packing, priors, validation."""

import numpy as np
import pytest
import torch

from thalia.mass import TCM
from thalia.params import ParameterSet, ParamSpace, ParamSpec


def _space():
    return ParamSpace(
        (
            ParamSpec("a", (2, 3), 0.5, 1 / 8, "a matrix"),
            ParamSpec("b", (), -1.0, 0.0, "a scalar"),
            ParamSpec("c", (4,), [0, 1, 2, 3], [0, 1, 0, 1], "a vector"),
        )
    )


def test_pack_unpack_round_trip():
    space = _space()
    p = space.prior_mean()
    vector = p.to_vector()
    assert vector.shape == (space.size,) == (11,)
    back = ParameterSet.from_vector(space, vector)
    for name in space.names:
        torch.testing.assert_close(back[name], p[name])
    assert space.vector_labels()[:2] == ["a[0,0]", "a[0,1]"] and space.vector_labels()[6] == "b"


def test_unpack_keeps_batch_dimensions():
    space = _space()
    batch = torch.randn(5, space.size, dtype=torch.float64)
    parts = space.unpack(batch)
    assert parts["a"].shape == (5, 2, 3) and parts["b"].shape == (5,) and parts["c"].shape == (5, 4)
    torch.testing.assert_close(space.pack({k: v[2] for k, v in parts.items()}), batch[2])


def test_priors_and_free_mask():
    space = _space()
    assert space.prior_var_vector().tolist() == [1 / 8] * 6 + [0.0, 0, 1, 0, 1]
    assert int(space.free_mask().sum()) == 8
    assert space.prior_mean_vector()[7:].tolist() == [0, 1, 2, 3]


def test_replace_validates_names_shapes_and_values():
    p = _space().prior_mean()
    q = p.replace(b=2.0, a=1.0)  # scalars broadcast
    assert float(q["b"]) == 2.0 and bool((q["a"] == 1).all()) and float(p["b"]) == -1.0
    with pytest.raises(ValueError, match=r"Unknown parameter 'd'.*expected one of 'a', 'b', 'c'"):
        p.replace(d=1.0)
    with pytest.raises(ValueError, match=r"Invalid shape for \"P\['c'\]\": expected \(4,\)"):
        p.replace(c=np.zeros(3))
    with pytest.raises(ValueError, match=r"P\['a'\].*finite.*1 non-finite"):
        p.replace(a=[[0, 0, np.nan], [0, 0, 0]])
    with pytest.raises(ValueError, match="expected a real array"):
        p.replace(b="fast")


def test_from_vector_checks_length():
    with pytest.raises(ValueError, match=r"Invalid shape for 'vector': expected \(11,\), got \(10,\)"):
        ParameterSet.from_vector(_space(), np.zeros(10))


def test_negative_prior_variance_is_rejected():
    with pytest.raises(ValueError, match="variances must be finite and >= 0"):
        ParamSpec("x", (2,), 0.0, -1.0)


def test_tcm_space_layout():
    """Names and shapes as in the original (Part B §3), for two sources and three channels."""
    model = TCM(2, lead_field=np.ones((3, 2)))
    shapes = {s.name: s.shape for s in model.space.specs}
    assert shapes["H"] == (8, 8, 2) and shapes["A"] == (5, 2, 2) and shapes["T"] == (2, 6)
    assert shapes["J"] == (56,) and shapes["c"] == (2, 3) and shapes["CT"] == ()
    free = model.space.free_mask()
    assert not bool(free[model.space.slice_of("A")].any())  # no extrinsic connection declared
    assert model.channels == ("ch1", "ch2", "ch3")


def test_every_free_tcm_parameter_moves_the_spectrum():
    """DESIGN principle 4: no inert parameters among the fitted ones."""
    model = TCM()
    p = model.default_parameters()
    freqs = torch.arange(2.0, 90.0, 4.0, dtype=torch.float64)
    theta = p.to_vector()
    base = model.csd(p, freqs).psd
    labels = model.space.vector_labels()
    inert = []
    for k in torch.nonzero(model.space.free_mask()).flatten().tolist():
        step = torch.zeros_like(theta)
        step[k] = 0.25
        moved = model.csd(ParameterSet.from_vector(model.space, theta + step), freqs).psd
        if float(((moved - base).abs() / base).max()) < 1e-4:
            inert.append(labels[k])
    assert inert == []

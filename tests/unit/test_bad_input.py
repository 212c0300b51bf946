"""Bad input raises a ValueError naming the parameter, the expected form and what was given."""

import numpy as np
import pytest
import torch

from thalia.mass import TCM
from thalia.spectra import CSD, welch_csd
from thalia.tcm import compute_jacobian, default_model, laplace_transfer_function, tc_hilge2


@pytest.fixture(scope="module")
def seed():
    return default_model(ns=1)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"n_sources": 0}, r"Invalid value for 'n_sources': expected an integer >= 1, got 0"),
        ({"n_sources": 1.5}, r"'n_sources'.*got 1.5"),
        ({"firing": "soft"}, r"Invalid value for 'firing': allowed 'smooth', 'hard', got 'soft'"),
        ({"delay_mode": "matrix"}, r"'delay_mode': allowed 'elementwise', 'first_order', 'none', got 'matrix'"),
        ({"n_inputs": 3}, r"'n_inputs': allowed 1, 2, got 3"),
        ({"n_sources": 2, "lead_field": np.ones((3, 3))}, r"'lead_field': expected \(n_channels, 2\), got \(3, 3\)"),
        ({"extrinsic": {"sideways": [(0, 0)]}}, r"'extrinsic connection type': allowed 'forward'.*got 'sideways'"),
        ({"n_sources": 2, "extrinsic": {"forward": [(0, 2)]}}, r"Invalid connection \(0, 2\).*0\.\.1"),
        ({"extras": ("endogenous",)}, r"'extras': allowed 'endo', 'thi', 'global', 'T1', got 'endogenous'"),
    ],
)
def test_model_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        TCM(**kwargs)


def test_unknown_parameter_name(tcm):
    with pytest.raises(ValueError, match=r"Unknown parameter 'Hx': expected one of 'A', 'AN', 'C', 'H'"):
        tcm.parameters(Hx=0.0)


def test_wrong_parameter_shape(tcm):
    with pytest.raises(ValueError, match=r"Invalid shape for \"P\['H'\]\": expected \(8, 8, 1\).*got \(3, 3\)"):
        tcm.parameters(H=np.zeros((3, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameter(tcm, bad):
    with pytest.raises(ValueError, match=r"Invalid value for \"P\['E'\]\": expected finite numbers, got 1 non-finite"):
        tcm.parameters(E=[0, 0, 0, bad, 0, 0, 0, 0])


@pytest.mark.parametrize(
    "freqs, pattern",
    [
        ([0.0, 1.0, 2.0], r"Invalid value for 'freqs': expected frequencies > 0 Hz, got minimum 0 Hz"),
        ([-5.0, 10.0], r"'freqs'.*> 0 Hz, got minimum -5 Hz"),
        ([1.0, np.nan], r"'freqs'.*finite"),
        (np.ones((2, 2)), r"Invalid shape for 'freqs': expected a non-empty 1-D array"),
        ([], r"Invalid shape for 'freqs'"),
    ],
)
def test_bad_frequencies(tcm, freqs, pattern):
    with pytest.raises(ValueError, match=pattern):
        tcm.csd(tcm.default_parameters(), freqs)


def test_bad_start_state(tcm):
    with pytest.raises(ValueError, match=r"Invalid shape for 'x0': expected 56 states, got 3"):
        tcm.fixed_point(tcm.default_parameters(), x0=np.zeros(3))
    with pytest.raises(ValueError, match=r"'x0'.*finite"):
        tcm.fixed_point(tcm.default_parameters(), x0=np.full(56, np.nan))


def test_parameter_set_of_another_model(tcm):
    other = TCM(2).default_parameters()
    with pytest.raises(ValueError, match=r"Invalid value for 'p': the parameter set has .* another layout"):
        tcm.csd(other, [10.0])


def test_seed_api_bad_inputs(seed):
    P, M = seed
    with pytest.raises(ValueError, match=r"Invalid shape for 'x': expected \(56,\), got \(55,\)"):
        tc_hilge2(np.zeros(55), np.zeros(1), P, M)
    with pytest.raises(ValueError, match=r"Invalid shape for 'u': expected \(1,\), got \(2,\)"):
        tc_hilge2(np.zeros(56), np.zeros(2), P, M)
    with pytest.raises(ValueError, match=r"Unknown parameter 'leakk'"):
        tc_hilge2(np.zeros(56), 0.0, {"leakk": 1.0}, M)
    with pytest.raises(ValueError, match=r"Invalid value for 'w': expected frequencies > 0 Hz"):
        laplace_transfer_function(P, M, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Invalid value for 'wrt': allowed 'x', 'u', got 'p'"):
        compute_jacobian(M["x"], 0.0, P, M, wrt="p")
    with pytest.raises(ValueError, match=r"Invalid value for 'M': expected the options dict"):
        tc_hilge2(np.zeros(56), 0.0, P, None)


def test_csd_container_checks_shapes():
    with pytest.raises(
        ValueError, match=r"Invalid shape for 'data': expected \(n_freqs, n_channels, n_channels\) = \(3, 1, 1\)"
    ):
        CSD(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3, 2, 2), ("a",))


def test_welch_checks_arguments():
    with pytest.raises(ValueError, match=r"Invalid value for 'nperseg': expected <= n_times = 100, got 200"):
        welch_csd(np.zeros(100), fs=100.0, nperseg=200)
    with pytest.raises(ValueError, match=r"Invalid value for 'fs': expected a finite number > 0, got -1"):
        welch_csd(np.zeros(100), fs=-1, nperseg=50)


def test_complete_mappings_of_tensors_are_validated_too(tcm):
    values = tcm.default_parameters().tensors()
    values["leak"] = torch.tensor(float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Invalid value for \"P\['leak'\]\": expected finite numbers"):
        tcm.csd(values, [10.0])
    with pytest.raises(ValueError, match=r"P\['leak'\]"):
        tcm.fixed_point(values)

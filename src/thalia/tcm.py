"""The tcm_py seed's function API, NumPy in and NumPy out (tcm_model.md Part A §9).

A thin facade over :class:`thalia.mass.TCM`::

    from thalia.tcm import default_model, tc_hilge2, compute_jacobian, compute_delays, \\
        laplace_transfer_function
    import numpy as np

    P, M = default_model(ns=1)
    x = np.zeros(M["n_states"])
    u = np.zeros(M["n_inputs"])
    dx = tc_hilge2(x, u, P, M)

    w = np.linspace(1, 100, 128)
    G = laplace_transfer_function(P, M, w)   # complex CSD, (len(w), n_channels, n_channels)

    m, V, diagnostics = fit_variational_laplace_thermo(y, forward_model, m0, S0)   # see thalia.inference

``P`` is a dict of NumPy arrays named as in the original (A, AN, C, H, Hn, Gb, T, Mh, Hh, CV, S, E,
leak, scale_NMDA, CT, TC, ID, J, L, a, b, c), all log-scale; a dict with only some of these names
is merged into the defaults, and unknown names raise. ``M`` holds the model options: ``n_states``,
``n_inputs``, ``ns``, ``x`` (the fixed point of the default parameters, flat, original order),
``Hz`` (1–90 Hz), and ``model`` (the :class:`~thalia.mass.TCM` instance the functions use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from thalia._validation import as_float_tensor, check_frequencies
from thalia.inference import fit_variational_laplace_thermo
from thalia.mass import TCM

__all__ = [
    "default_model",
    "tc_hilge2",
    "compute_jacobian",
    "compute_delays",
    "laplace_transfer_function",
    "fit_variational_laplace_thermo",
]


def default_model(ns: int = 1, *, firing: str = "smooth", **options: Any) -> tuple[dict[str, np.ndarray], dict]:
    """The stable default parameters ``P`` and model options ``M`` for ``ns`` sources.

    Extra keyword options go to :class:`thalia.mass.TCM` (e.g. ``extrinsic=...``).
    """
    model = TCM(ns, firing=firing, **options)
    params = model.default_parameters()
    fixed = model.fixed_point(params)
    options_out = {
        "n_states": model.n_states,
        "n_inputs": model.n_inputs,
        "ns": ns,
        "x": fixed.x.detach().numpy().copy(),
        "Hz": np.arange(1.0, 91.0),
        "firing": firing,
        "model": model,
    }
    return params.to_numpy(), options_out


def _model(M: Mapping[str, Any]) -> TCM:
    if not isinstance(M, Mapping):
        raise ValueError(
            f"Invalid value for 'M': expected the options dict from default_model(), got {type(M).__name__}."
        )
    model = M.get("model")
    if isinstance(model, TCM):
        return model
    ns = int(M.get("ns", 1))
    return TCM(ns, firing=M.get("firing", "smooth"))


def _state(name: str, x: Any, model: TCM) -> torch.Tensor:
    """Flat state in the original order; an (ns, 8, 7) array is vectorised in Fortran order."""
    array = np.asarray(x, dtype=float)
    if array.shape == (model.n_sources, 8, 7):
        array = array.reshape(-1, order="F")
    return as_float_tensor(name, array, (model.n_states,))


def _input(u: Any, model: TCM) -> torch.Tensor:
    array = np.atleast_1d(np.asarray(u, dtype=float))
    return as_float_tensor("u", array, (model.n_inputs,))


def tc_hilge2(x: Any, u: Any, P: Mapping[str, Any], M: Mapping[str, Any]) -> np.ndarray:
    """dx/dt of the TCM (tcm_model.md Part B §2) at state ``x`` (flat, 56·ns, or (ns, 8, 7)) and input ``u``."""
    model = _model(M)
    p = model.parameters(P)
    return model.flow(_state("x", x, model), _input(u, model), p).numpy()


def compute_jacobian(x: Any, u: Any, P: Mapping[str, Any], M: Mapping[str, Any], *, wrt: str = "x") -> np.ndarray:
    """Exact Jacobian of :func:`tc_hilge2`: ∂f/∂x (n × n) or, with ``wrt="u"``, ∂f/∂u (n × n_inputs)."""
    model = _model(M)
    p = model.parameters(P)
    state = _state("x", x, model)
    if wrt == "x":
        return model.jacobian(state, p).numpy()
    if wrt == "u":
        return model.input_matrix(state, p).numpy()
    raise ValueError(f"Invalid value for 'wrt': allowed 'x', 'u', got {wrt!r}.")


def compute_delays(P: Mapping[str, Any], M: Mapping[str, Any]) -> np.ndarray:
    """The (n, n) delay matrix in seconds, D[i, j] = (Tc[p(i), p(j)] + ID[p(j)]) / 1000."""
    model = _model(M)
    return model.delays(model.parameters(P)).numpy()


def laplace_transfer_function(P: Mapping[str, Any], M: Mapping[str, Any], w: Any) -> np.ndarray:
    """Complex cross-spectral density at frequencies ``w`` (Hz): (len(w), n_channels, n_channels).

    The fixed point is re-solved for ``P`` (starting from the default fixed point), the model is
    linearised there with its delays, and CSD = H Gu Hᴴ + channel noise (Part A §6).
    """
    model = _model(M)
    freqs = check_frequencies("w", w)
    return model.csd(model.parameters(P), freqs).data.numpy()

"""SPM compatibility: SPM's models, parameter tables and spectral mode, reproducing SPM's numbers.

* :func:`read_spm_parameters` / :func:`write_spm_parameters` — SPM-style parameter tables (CSV with
  ``spm_vec`` names) to and from :class:`~thalia.params.ParameterSet`.
* :func:`csd` — the CSD of ``"cmc"`` or ``"cmm_nmda"`` at a parameter set, evaluated as SPM's
  ``spm_csd_mtf`` does (forward-difference Jacobian with step e⁻⁸, SPM's expansion point and delay
  operator), as a NumPy array.
* :func:`spectral_response` — every intermediate of SPM's spectral mode (Jacobians, delay-folded
  dfdx and dfdu, modes before and after SPM's eigenvalue transform, transfer function, Gu, Gs, Gn,
  spectral filter) for CMC, CMM_NMDA *and* TCM, with the exact (autodiff) or SPM's finite-difference
  Jacobian.

Example
-------
>>> from thalia.mass import spm
>>> P = spm.read_spm_parameters("cmc_priors.csv")              # doctest: +SKIP
>>> y = spm.csd("cmc", P, range(4, 49))                         # doctest: +SKIP
>>> y.shape                                                     # doctest: +SKIP
(45, 1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from thalia._validation import check_frequencies, check_option
from thalia.mass.cmc import CMC
from thalia.mass.cmm_nmda import CMMNMDA
from thalia.mass.delays import DELAY_METHODS
from thalia.mass.spm_base import SPMModel
from thalia.mass.spm_spectral import JACOBIANS, SpectralResponse
from thalia.mass.spm_table import read_spm_parameters, write_spm_parameters
from thalia.params import ParameterSet

__all__ = [
    "MODELS",
    "read_spm_parameters",
    "write_spm_parameters",
    "csd",
    "spectral_response",
    "model_for",
    "SpectralResponse",
]

#: SPM's models by name.
MODELS: dict[str, type[SPMModel]] = {"cmc": CMC, "cmm_nmda": CMMNMDA}


def model_for(model: str, P: ParameterSet | None = None) -> SPMModel:
    """An SPM model (``"cmc"`` or ``"cmm_nmda"``) sized for ``P``: sources from its lead field ``L``,
    extrinsic connections from the entries of ``A`` whose prior mean is above −32."""
    name = check_option("model", model, tuple(MODELS))
    if P is None:
        return MODELS[name]()
    if not isinstance(P, ParameterSet) or "L" not in P.space or "A" not in P.space:
        raise ValueError(
            f"Invalid value for 'P': expected a ParameterSet of SPM's {name} parameters (e.g. from "
            f"read_spm_parameters), got {type(P).__name__}."
        )
    expected_names = MODELS[name]().space.names
    if P.space.names != expected_names:
        raise ValueError(
            f"Invalid value for 'P': the parameters do not have SPM's {name} layout; expected the fields "
            f"{', '.join(expected_names)}; got {', '.join(P.space.names)}."
        )
    ns = int(P["L"].shape[-1])
    present = P.space["A"].prior_mean > -32
    if name == "cmc":
        modulatory = P.space["M"].prior_var > 0
        model_ = CMC(ns, forward=present[..., 0], backward=present[..., 2], modulatory=modulatory)
    else:
        model_ = CMMNMDA(ns, forward=present[..., 0], backward=present[..., 1])
    if not model_.space.compatible(P.space):
        expected = ", ".join(f"{s.name}{s.shape}" for s in model_.space.specs)
        given = ", ".join(f"{s.name}{s.shape}" for s in P.space.specs)
        raise ValueError(
            f"Invalid value for 'P': the parameters do not have SPM's {name} layout for {ns} source(s); "
            f"expected {expected}; got {given}."
        )
    return model_


def _resolve(model: Any, P: Any) -> tuple[Any, Any]:
    if P is not None and not isinstance(P, Mapping):
        raise ValueError(
            "Invalid value for 'P': expected a ParameterSet (e.g. from read_spm_parameters) or a mapping "
            f"name -> array, got {type(P).__name__}."
        )
    if isinstance(model, str):
        return model_for(model, P if isinstance(P, ParameterSet) else None), P
    if not hasattr(model, "flow") or not hasattr(model, "delays"):
        raise ValueError(
            f"Invalid value for 'model': expected 'cmc', 'cmm_nmda' or a neural mass model (CMC, CMMNMDA, TCM), "
            f"got {model!r}."
        )
    return model, P


def spectral_response(
    model: Any,
    P: Mapping[str, Any] | None,
    freqs: Any,
    *,
    jacobian: str = "finite_difference",
    delay: str | None = "spm",
    x: Any = None,
) -> SpectralResponse:
    """SPM's spectral mode (``spm_csd_mtf``) with every intermediate, for CMC, CMM_NMDA or TCM.

    Parameters
    ----------
    model : {"cmc", "cmm_nmda"} or model instance
        A name (sized for ``P``) or a :class:`~thalia.mass.CMC`, :class:`~thalia.mass.CMMNMDA` or
        :class:`~thalia.mass.TCM` instance.
    P : ParameterSet or mapping, optional
        Parameters (default: the model's prior means).
    freqs : array_like
        Frequencies in Hz (> 0), used as given.
    jacobian : {"finite_difference", "exact"}
        SPM's forward differences with step e⁻⁸ (default, to reproduce SPM) or automatic
        differentiation.
    delay : {"spm", "exact", "spm_series", "first_order", "none"} or None
        How delays are folded into the Jacobian: ``"spm"`` (default) as SPM does for this model
        (CMC: Robbins–Monro series; CMM_NMDA and TCM: first order); ``None``: the model's own default
        (CMC: the exact delayed modes).
    x : array_like, optional
        Expansion point (default: the model's, i.e. SPM's ``M.x``; TCM: its fixed point).
    """
    model, P = _resolve(model, P)
    check_option("jacobian", jacobian, JACOBIANS)
    allowed = ("spm", *DELAY_METHODS)
    if delay is not None:
        check_option("delay", delay, allowed)
    method = model.spm_delay_method if delay == "spm" else delay
    return model.spectral_response({} if P is None else P, freqs, jacobian=jacobian, x=x, delay=method)


def csd(model: Any, P: Mapping[str, Any] | None, freqs: Any, *, jacobian: str = "finite_difference") -> np.ndarray:
    """The cross-spectral density as SPM's reference set-up computes it.

    Parameters
    ----------
    model : {"cmc", "cmm_nmda"} or model instance
    P : ParameterSet
        E.g. ``read_spm_parameters("cmc_priors.csv")`` or a posterior column of such a table.
    freqs : array_like
        Frequencies in Hz.
    jacobian : {"finite_difference", "exact"}
        SPM's forward-difference Jacobian (default) or the exact one.

    Returns
    -------
    ndarray, complex, (n_freqs, n_channels, n_channels)
    """
    check_frequencies("freqs", freqs)
    response = spectral_response(model, P, freqs, jacobian=jacobian, delay="spm")
    return response.csd.detach().cpu().numpy()

"""Bayesian model reduction of a nonlinear fit against refitting the reduced model.

SPM's CMC inversion (``cmc_nlsi_*``) is fitted once; BMR then predicts the free energy and posterior of
reduced priors (one parameter switched off, or two variances shrunk) without refitting. Refitting with
the reduced prior must give the same F within 0.5 nat (the issue's bound; the Laplace approximation is
the only difference) and nearby means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from thalia.inference import fit_spectrum
from thalia.inference.bmr import reduce
from thalia.mass import spm
from thalia.params import ParamSpace, ParamSpec

DATA = Path(__file__).parents[1] / "reference" / "data" / "spm"


def _with_variances(space: ParamSpace, variances: torch.Tensor) -> ParamSpace:
    specs = []
    for spec in space.specs:
        var = spec.unflatten_numpy(variances[space.slice_of(spec.name)].numpy())
        specs.append(
            ParamSpec(spec.name, spec.shape, spec.prior_mean, var, spec.doc, spec.units, spec.order, spec.labels)
        )
    return ParamSpace(tuple(specs))


@pytest.fixture(scope="module")
def full():
    priors = spm.read_spm_parameters(DATA / "cmc_nlsi_params.csv", "prior_mean")
    fit = np.genfromtxt(DATA / "cmc_nlsi_fit.csv", delimiter=",", names=True)
    spectrum = (fit["Hz"], fit["data_re"] + 1j * fit["data_im"])
    return priors.space, spectrum, fit_spectrum(spectrum, "cmc", priors=priors, tol=1e-3)


@pytest.mark.parametrize(
    ("changes", "name"), [({"T(1,3)": 0.0}, "switch off"), ({"S(1,1)": 1 / 256, "G(1,4)": 1 / 256}, "shrink")]
)
def test_reduced_free_energy_matches_refit(full, changes, name):
    space, spectrum, posterior = full
    labels = space.vector_labels()
    variances = space.prior_var_vector().clone()
    for label, value in changes.items():
        variances[labels.index(label)] = value
    reduced = reduce(posterior, reduced_mean=posterior.prior_mean, reduced_cov=torch.diag(variances))
    refit = fit_spectrum(spectrum, "cmc", priors=_with_variances(space, variances), tol=1e-3)
    assert refit.converged
    assert reduced.F == pytest.approx(refit.F, abs=0.5), name
    sd = variances.sqrt()
    free = sd > 0
    assert float(((reduced.mean - refit.mean)[free] / sd[free]).abs().max()) < 0.1, name

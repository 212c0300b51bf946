"""Bayesian inversion of any forward model y = g(θ) with Gaussian priors.

* :func:`variational_laplace` / :func:`variational_laplace_batch` — SPM's ``spm_nlsi_GN`` scheme
  (Gauss–Newton with Levenberg–Marquardt-like steps, noise precisions with hyperpriors, free energy).
* :func:`fit_spectrum` / :func:`fit_spectra` — TCM, CMC or CMM_NMDA fitted to spectra.
* :func:`fit_variational_laplace_thermo` — tempered VL with a thermodynamic-integration log evidence.
* :mod:`~thalia.inference.bmr` (Bayesian model reduction), :mod:`~thalia.inference.peb` (parametric
  empirical Bayes over subjects' posteriors).
* :func:`fit_group` / :func:`sweep` — group fits and parameter sweeps on any ``concurrent.futures``
  Executor or a Dask cluster (:func:`dask_executor`), with retries and checkpoints.
* :class:`Posterior` — mean, covariance, F and its parts, status, trace, save/load.
"""

from thalia.inference.fit import variational_laplace, variational_laplace_batch
from thalia.inference.group import GroupFit, SweepError, dask_executor, fit_group, sweep
from thalia.inference.noise import csd_component, identity_component
from thalia.inference.posterior import Posterior, Status
from thalia.inference.spectral import fit_spectra, fit_spectrum
from thalia.inference.thermo import fit_variational_laplace_thermo

__all__ = [
    "variational_laplace",
    "variational_laplace_batch",
    "fit_spectrum",
    "fit_variational_laplace_thermo",
    "fit_spectra",
    "Posterior",
    "Status",
    "csd_component",
    "identity_component",
    "fit_group",
    "sweep",
    "dask_executor",
    "GroupFit",
    "SweepError",
]

"""Which receptor-level effect explains a drug's spectral change: one fit of both conditions.

A drug study asks what changed between two spectra, baseline and drug. Fitting each spectrum on its
own and comparing the two posteriors lets every one of the mass model's ~70 free parameters
move, and the difference of two such posteriors is poorly identified: on the default circuit, a
GABA-A decay × 1.5 is read as a *shorter* GABA-A time constant, the change being absorbed by other
parameters (docs/bridge.md). Pharmacological DCM instead fits both conditions at once, with the
parameters shared and a few condition-specific effects (Moran et al. 2011, PLoS One 6:e22790, who
recovered isoflurane's inhibitory effects in rodent LFP this way; Muthukumaraswamy et al. 2015,
Neuropsychopharmacology 40:1996, ketamine in MEG). :func:`fit_drug_effects` does that:

    log S_baseline = f(θ),    log S_drug = f(θ + U·δ)

with θ the bridge model's parameters (prior: the baseline fit's priors) and δ the drug's effects, one
per candidate receptor-level change (:data:`~thalia.bridge.drugs.TCM_EFFECTS`: the conductance scales
of AMPA, NMDA, GABA-A and GABA-B, the GABA-A decay, the NMDA conductance of inhibitory cells and the
depolarising drive of the cortex; U maps each onto the parameters it moves, as a drug preset does,
:func:`~thalia.bridge.drugs.effect_directions`). Each δ has prior N(0, 1/8), the variance of the
TCM's log-scale gains (a factor between 0.5 and 2 at two SD). Every effect competes to explain the
change, so a drug's effect is identified when its spectral signature differs from the others'.

Both log spectra are centred over the band (the overall level is arbitrary), each has its own noise
precision with the Welch hyperprior of :mod:`thalia.bridge.fit`, and the fit starts at the baseline
fit's posterior mean with δ = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from thalia._validation import check_option, check_positive_float, check_positive_int
from thalia.bridge.circuit import CircuitLFP
from thalia.bridge.drugs import TCM_EFFECTS, effect_directions
from thalia.bridge.fit import (
    NOISE_HYPER_VAR,
    SpectralFit,
    _channel,
    centred_log,
    centred_log_model,
    welch_log_precision,
)
from thalia.inference import Posterior, variational_laplace
from thalia.spectra import CSD

#: Prior variance of each drug effect (log scale), that of the TCM's log-scale gains.
EFFECT_PRIOR_VAR = 1 / 8


@dataclass(frozen=True)
class DrugEffectFit:
    """Baseline and drug spectra fitted at once, with shared parameters and per-effect changes δ.

    Attributes
    ----------
    posterior : Posterior
        Over [θ (the bridge model's P parameters), δ (one per effect)]; ``data`` and ``predicted`` are
        the two centred log spectra, baseline first, so ``explained_variance`` covers both.
    effects : tuple of str
        The effects of δ, in order (names of :data:`~thalia.bridge.drugs.TCM_EFFECTS`).
    baseline : SpectralFit
        The baseline fit (its priors, model and data).
    freqs : ndarray, (F,)
        Frequencies, Hz.
    power : ndarray, (F,)
        The drug condition's auto-spectrum.
    """

    posterior: Posterior
    effects: tuple[str, ...]
    baseline: SpectralFit
    freqs: np.ndarray
    power: np.ndarray

    @property
    def explained_variance(self) -> float:
        """Fraction of the variance of both centred log spectra the joint fit explains."""
        return self.posterior.explained_variance

    def table(self, *, level: float = 0.9) -> list[dict]:
        """One row per effect: posterior mean of δ (natural log of the factor), its ``level`` credible
        interval, the factor exp(δ) and P(δ > 0)."""
        n = len(self.effects)
        lower, upper = (bound[-n:] for bound in self.posterior.credible_interval(level))
        mean, sd = self.posterior.mean[-n:], self.posterior.sd[-n:]
        return [{"effect": effect, "change": float(mean[i]), "ci_low": float(lower[i]), "ci_high": float(upper[i]),
                 "factor": float(torch.exp(mean[i])), "p_up": float(stats.norm.cdf(float(mean[i] / sd[i])))}
                for i, effect in enumerate(self.effects)]  # fmt: skip

    def direction_probability(self, effects: Sequence[str]) -> dict[str, float]:
        """Posterior probability that the mean of the named effects is positive:
        ``{"change", "sd", "p_up"}`` (change: the mean of their δ)."""
        _check_effects(effects, self.effects)
        weights = torch.zeros(len(self.effects), dtype=torch.float64)
        weights[[self.effects.index(effect) for effect in effects]] = 1.0 / len(effects)
        n = len(self.effects)
        mean, cov = self.posterior.mean[-n:], self.posterior.cov[-n:, -n:]
        change, sd = float(weights @ mean), float(torch.sqrt(weights @ cov @ weights))
        return {"change": change, "sd": sd, "p_up": float(stats.norm.cdf(change / sd))}

    def fitted_power(self) -> dict[str, np.ndarray]:
        """Condition (``"baseline"``, ``"drug"``) -> the fitted spectrum at :attr:`freqs`, on the data's
        scale (the model's centred log spectrum shifted by the data's mean log power)."""
        n = len(self.freqs)
        predicted = self.posterior.predicted.detach().numpy()
        data = {"baseline": self.baseline.power, "drug": self.power}
        return {cond: np.exp(predicted[i * n : (i + 1) * n] + np.mean(np.log(data[cond])))
                for i, cond in enumerate(("baseline", "drug"))}  # fmt: skip


def fit_drug_effects(
    baseline: SpectralFit,
    drug: CircuitLFP | CSD,
    *,
    n_segments: int | None = None,
    channel: str | None = None,
    segment_s: float = 1.0,
    effects: Sequence[str] = TCM_EFFECTS,
    effect_var: float = EFFECT_PRIOR_VAR,
    **options,
) -> DrugEffectFit:
    """Fit the baseline and drug spectra at once and infer the drug's receptor-level effects (module doc).

    Parameters
    ----------
    baseline : SpectralFit
        The fit of the baseline condition (:func:`~thalia.bridge.fit.fit_circuit` or
        :func:`~thalia.bridge.fit.fit_tcm`): its data, priors and posterior (the starting point).
    drug : CircuitLFP or CSD
        The drug condition: a circuit run (its Welch CSD with ``segment_s`` segments is taken) or a
        Welch CSD (e.g. of M/EEG under the drug, :mod:`thalia.io`) with the baseline's frequencies.
    n_segments : int, optional
        Segments the drug CSD's Welch estimate averaged (required for a CSD; a circuit run knows it).
    channel : str, optional
        Channel to fit: default ``"cortex"`` for a circuit run, the only channel of a CSD.
    segment_s : float
        Welch segments of a circuit run, s (as the baseline fit's).
    effects : sequence of str
        Candidate effects (default: all of :data:`~thalia.bridge.drugs.TCM_EFFECTS`).
    effect_var : float
        Prior variance of each effect (log scale).
    **options
        Passed to :func:`thalia.inference.variational_laplace` (``max_iter``, ``tol``, ``verbose``…).
    """
    if not isinstance(baseline, SpectralFit):
        raise ValueError(f"Invalid value for 'baseline': expected a SpectralFit, got {type(baseline).__name__}.")
    if isinstance(drug, CircuitLFP):
        channel = "cortex" if channel is None else channel
        spectrum = drug.csd("region" if channel == "cortex" else "layers", segment_s=segment_s)
        n_segments = drug.n_segments(segment_s)
    elif isinstance(drug, CSD):
        if n_segments is None:
            raise ValueError("Invalid value for 'n_segments': expected the drug CSD's Welch segments (int), got None.")
        spectrum, n_segments = drug, check_positive_int("n_segments", n_segments)
    else:
        raise ValueError(f"Invalid value for 'drug': expected a CircuitLFP or a CSD, got {type(drug).__name__}.")
    _check_effects(effects, TCM_EFFECTS)
    effect_var = check_positive_float("effect_var", effect_var)
    freqs, power = _channel(spectrum, channel, (float(baseline.freqs[0]), float(baseline.freqs[-1])))
    if freqs.shape != baseline.freqs.shape or not np.allclose(freqs, baseline.freqs):
        raise ValueError(
            f"Invalid value for 'drug': its frequencies ({len(freqs)} over {freqs[0]:g}–{freqs[-1]:g} Hz) differ "
            f"from the baseline fit's ({len(baseline.freqs)}); estimate both spectra alike."
        )
    space = baseline.space
    n_par, n_eff = len(space.vector_labels()), len(effects)
    directions = effect_directions(space, tuple(effects))
    centred = centred_log_model(baseline.model, freqs)

    def forward(x):
        theta, delta = x[:n_par], x[n_par:]
        return torch.cat([centred(theta), centred(theta + directions @ delta)])

    y = torch.as_tensor(np.concatenate([centred_log(baseline.power), centred_log(power)]))
    n_f = len(freqs)
    components = torch.zeros(2, 2 * n_f, 2 * n_f, dtype=torch.float64)
    components[0, :n_f, :n_f] = components[1, n_f:, n_f:] = torch.eye(n_f, dtype=torch.float64)
    noise = [welch_log_precision(n) for n in (baseline.n_segments or n_segments, n_segments)]
    zeros = torch.zeros(n_eff, dtype=torch.float64)
    posterior = variational_laplace(
        forward,
        y,
        torch.cat([space.prior_mean_vector(), zeros]),
        torch.cat([space.prior_var_vector(), torch.full((n_eff,), effect_var, dtype=torch.float64)]),
        precision_components=components,
        hE=torch.tensor(noise, dtype=torch.float64),
        hC=NOISE_HYPER_VAR,
        init=torch.cat([baseline.posterior.mean, zeros]),
        labels=[*space.vector_labels(), *(f"effect[{effect}]" for effect in effects)],
        **options,
    )
    return DrugEffectFit(posterior, tuple(effects), baseline, freqs, power)


def _check_effects(effects, allowed: Sequence[str]) -> None:
    if isinstance(effects, str) or not effects or len(set(effects)) != len(effects):
        raise ValueError(f"Invalid value for 'effects': expected distinct names of {list(allowed)}, got {effects!r}.")
    for effect in effects:
        check_option("effects", effect, allowed)

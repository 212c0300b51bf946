"""The result of an inversion: a Gaussian posterior with its free energy, status and trace."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

Tensor = torch.Tensor
FORMAT_VERSION = 1


class Status(str, Enum):
    """How an inversion ended."""

    CONVERGED = "converged"
    MAX_ITER = "max_iter"
    FAILED = "failed"


REMEDIES = {
    Status.CONVERGED: "",
    Status.MAX_ITER: (
        "Allow more iterations (max_iter=...), warm-start from this posterior (init=posterior), or try "
        "several starts (n_starts=...)."
    ),
    Status.FAILED: (
        "Check that the model is stable and finite at the prior mean (e.g. model.fixed_point(...)), "
        "tighten the prior variances of the parameters that destabilise it, or start elsewhere (init=...)."
    ),
}


@dataclass
class Posterior:
    """A Gaussian posterior q(θ) = N(mean, cov) and what the inversion learned on the way.

    Attributes
    ----------
    mean, cov : Tensor, (P,) and (P, P)
        Posterior mean and covariance over all parameters (fixed ones have zero variance).
    prior_mean, prior_cov : Tensor, (P,) and (P, P)
    F : float
        Free energy (the Laplace approximation to the log evidence); NaN when the fit failed at once.
    L : tuple of 3 float
        Its parts: accuracy (expected log-likelihood term L₁), parameter complexity L₂ and noise
        hyperparameter complexity L₃ (F = L₁ + L₂ + L₃).
    noise_log_precision, noise_cov : Tensor, (n_h,) and (n_h, n_h)
        Posterior log-precisions h of the noise components and their covariance.
    status : Status
    message : str
        What happened; on failure or non-convergence, with a remedy.
    iterations : int
    trace : list of dict
        One entry per iteration: accepted, F, F_gain (F − F at the first iteration), dF_predicted, log_step.
    data, predicted : Tensor
        The data and the model's prediction at the posterior mean (same shape, real or complex).
    labels : tuple of str
        One label per parameter (e.g. SPM's ``T(1,2)``).
    log_evidence : float, optional
        The thermodynamic-integration estimate of ln p(y), when the fit was tempered.
    freqs : Tensor, optional
        Frequencies of a spectral fit (Hz).
    model : str
        The forward model's name (for spectral fits).
    units : tuple of str, optional
        Units of each parameter's natural value (see ``natural``).
    natural : dict, optional
        How a parameter maps to natural units: label -> (kind, scale) with kind "log" (value =
        scale·exp(θ)) or "linear" (value = scale·θ).
    seconds : float
        Wall time of the fit.
    """

    mean: Tensor
    cov: Tensor
    prior_mean: Tensor
    prior_cov: Tensor
    F: float
    L: tuple[float, float, float]
    noise_log_precision: Tensor
    noise_cov: Tensor
    status: Status
    message: str
    iterations: int
    trace: list[dict]
    data: Tensor
    predicted: Tensor
    labels: tuple[str, ...]
    log_evidence: float | None = None
    freqs: Tensor | None = None
    model: str = ""
    natural: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    seconds: float = 0.0

    # -- summaries ------------------------------------------------------------------------------
    @property
    def converged(self) -> bool:
        return self.status is Status.CONVERGED

    @property
    def accuracy(self) -> float:
        return self.L[0]

    @property
    def complexity(self) -> float:
        """Complexity (KL from the prior), −(L₂ + L₃), in nats."""
        return -(self.L[1] + self.L[2])

    @property
    def sd(self) -> Tensor:
        return torch.diagonal(self.cov).clamp_min(0).sqrt()

    @property
    def explained_variance(self) -> float:
        """1 − Σ|y − ŷ|² / Σ|y − ȳ|² (complex data: moduli)."""
        residual = (self.data - self.predicted).abs().pow(2).sum()
        total = (self.data - self.data.mean()).abs().pow(2).sum()
        return float(1 - residual / total) if float(total) > 0 else math.nan

    def credible_interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Equal-tailed marginal credible intervals (lower, upper) of θ."""
        if not 0 < level < 1:
            raise ValueError(f"Invalid value for 'level': expected a probability in (0, 1), got {level!r}.")
        z = float(stats.norm.ppf(0.5 + level / 2))
        return self.mean - z * self.sd, self.mean + z * self.sd

    def free(self) -> Tensor:
        """Boolean mask of the parameters with non-zero prior variance."""
        return torch.diagonal(self.prior_cov) > 0

    def summary(self, level: float = 0.9, *, all_parameters: bool = False) -> str:
        """A text table: prior, posterior mean, SD and credible interval of each free parameter, in θ
        and, where known, in natural units; headed by the status, F and explained variance."""
        lower, upper = self.credible_interval(level)
        pct = f"{round(level * 100)}%"
        head = [
            f"{self.model or 'model'} posterior: {self.status.value} after {self.iterations} iterations "
            f"({self.seconds:.2f} s); F = {self.F:.3f} (accuracy {self.accuracy:.3f}, complexity "
            f"{self.complexity:.3f})" + ("" if self.log_evidence is None else f"; ln p(y) ≈ {self.log_evidence:.3f}"),
            f"explained variance {self.explained_variance:.4f}; noise log-precision "
            + ", ".join(f"{h:.3f}" for h in self.noise_log_precision.tolist()),
        ]
        if self.message and not self.converged:
            head.append(self.message)
        rows = [f"{'parameter':<14}{'prior':>9}{'mean':>10}{'sd':>9}   {pct} CI (θ){'':<9}natural units ({pct} CI)"]
        mask = torch.ones_like(self.free()) if all_parameters else self.free()
        for i in torch.nonzero(mask).flatten().tolist():
            label = self.labels[i]
            lo, hi, m = float(lower[i]), float(upper[i]), float(self.mean[i])
            rows.append(
                f"{label:<14}{float(self.prior_mean[i]):>9.3f}{m:>10.4f}{float(self.sd[i]):>9.4f}   "
                f"[{lo:7.3f}, {hi:7.3f}]   {self._natural(label, m, lo, hi)}"
            )
        return "\n".join(head + rows)

    def _natural(self, label: str, m: float, lo: float, hi: float) -> str:
        if label not in self.natural:
            return ""
        kind, scale, unit = self.natural[label]
        f = (lambda t: scale * math.exp(t)) if kind == "log" else (lambda t: scale * t)
        a, b = sorted((f(lo), f(hi)))
        return f"{f(m):.4g} {unit} [{a:.4g}, {b:.4g}]".rstrip()

    def __repr__(self) -> str:
        return (
            f"Posterior(model={self.model!r}, status={self.status.value!r}, F={self.F:.3f}, "
            f"n_params={len(self.labels)}, n_free={int(self.free().sum())}, iterations={self.iterations})"
        )

    # -- save / load ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save to a NumPy ``.npz`` archive (arrays + JSON metadata; no pickles). Returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays = {
            name: _to_numpy(getattr(self, name))
            for name in (
                "mean",
                "cov",
                "prior_mean",
                "prior_cov",
                "noise_log_precision",
                "noise_cov",
                "data",
                "predicted",
            )
        }
        if self.freqs is not None:
            arrays["freqs"] = _to_numpy(self.freqs)
        meta = {
            "format": "thalia.Posterior",
            "version": FORMAT_VERSION,
            "F": self.F,
            "L": list(self.L),
            "status": self.status.value,
            "message": self.message,
            "iterations": self.iterations,
            "trace": self.trace,
            "labels": list(self.labels),
            "log_evidence": self.log_evidence,
            "model": self.model,
            "natural": {k: list(v) for k, v in self.natural.items()},
            "seconds": self.seconds,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)  # never a half-written file under the final name
        return path

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Load a posterior saved by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Invalid value for 'path': no such file {str(path)!r}.")
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                arrays = {k: torch.as_tensor(archive[k]) for k in archive.files if k != "meta"}
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(
                f"Invalid value for 'path': {str(path)!r} is not a saved thalia Posterior ({err})."
            ) from err
        if meta.get("format") != "thalia.Posterior":
            raise ValueError(f"Invalid value for 'path': {str(path)!r} is not a saved thalia Posterior.")
        return cls(
            **{k: arrays[k] for k in ("mean", "cov", "prior_mean", "prior_cov", "noise_log_precision", "noise_cov")},
            data=arrays["data"],
            predicted=arrays["predicted"],
            freqs=arrays.get("freqs"),
            F=float(meta["F"]),
            L=tuple(meta["L"]),
            status=Status(meta["status"]),
            message=meta["message"],
            iterations=int(meta["iterations"]),
            trace=meta["trace"],
            labels=tuple(meta["labels"]),
            log_evidence=meta["log_evidence"],
            model=meta["model"],
            natural={k: tuple(v) for k, v in meta["natural"].items()},
            seconds=float(meta["seconds"]),
        )

    def with_(self, **changes: Any) -> Posterior:
        """A copy with some fields replaced."""
        return replace(self, **changes)


def _to_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()

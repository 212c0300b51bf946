"""Benchmark: variational Laplace inversions of neural mass models, thalia vs SPM's ``spm_nlsi_GN``.

Measured side by side in one run (wall time by ``time.perf_counter``, process CPU time by
``time.process_time``; medians over ``--repeats`` fits after one untimed warm-up fit; the first fit
of each case in the process is reported separately as "cold"):

1. **TCM, one source**: 90 frequencies (1..90 Hz), its 47 free parameters. The data are the model's
   own CSD at θ = prior mean + 0.5·prior SD·z (seeded ``torch.Generator``, free parameters only),
   fitted from the prior mean by ``fit_spectrum(..., "tcm")`` to convergence. Target: under 1 s.
2. **CMC, SPM's reference inversion** (``tests/reference/data/spm/cmc_nlsi_*``): SPM's data and priors,
   ``fit_spectrum(..., "cmc", priors=P, mode=...)`` with ``mode="exact"`` (exact Jacobians by automatic
   differentiation, exact delay operator) and ``mode="spm"`` (SPM's finite differences and delay
   series). Compared with SPM's F = 300.257 after 7 iterations and its CPU time: 7.3 s in the recorded
   run (``cmc_nlsi_summary.json``), 6.8–8.8 s over repeated runs on this machine class
   (``/work/shared/specs/spm_dcm.md``). Speed-ups are SPM's CPU seconds over thalia's wall and CPU
   seconds. Target: at least 20× (checked against the low end, 6.8 s).
3. **Batch**: ``--batch`` CMC spectra (one source, 45 frequencies 4..48 Hz), each from its own
   θ = prior mean + 0.5·prior SD·z, with Gaussian observation noise of the structure the likelihood
   assumes (covariance exp(−8)·Q⁻¹ with Q = ``csd_component`` of the clean CSD: about 2 % of the
   spectrum, with SPM's floor), fitted in ONE ``fit_spectra`` call. Reported: total wall and CPU time,
   per-spectrum time, fraction converged, and whether the library vectorised the batch (it logs when
   it falls back to one parameter set at a time). For comparison, the first ``--sequential`` spectra
   are also fitted one by one with ``fit_spectrum``. ``--device cuda`` runs the batch on the GPU
   (``fit_spectra(..., device="cuda")``); an error there is reported as "unsupported".

SPM's side is not re-run (Octave is not installed here); its figures are the ones recorded under
Octave 7.3 on a 2-vCPU machine of this class.

Run from the repository root::

    python benchmarks/inference.py --json out/bench/inference.json          # defaults (batch 1000)
    python benchmarks/inference.py --batch 100 --repeats 3                     # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _machine import environment, load_average

from thalia.inference import csd_component, fit_spectra, fit_spectrum
from thalia.mass import CMC, TCM, spm
from thalia.spectra import CSD

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(REPO_ROOT, "tests", "reference", "data", "spm")
TCM_FREQS = np.arange(1.0, 91.0)  # 90 frequencies, 1..90 Hz
CMC_FREQS = np.arange(4.0, 49.0)  # 45 frequencies, 4..48 Hz
#: Spread of the true parameters around the prior mean, in prior standard deviations.
DRAW_SPREAD = 0.5
#: Log-precision of the synthetic observation noise (the default hyperprior mean hE of the fits).
NOISE_LOG_PRECISION = 8.0
#: SPM's spm_nlsi_GN on the CMC reference: CPU seconds over repeated runs on this machine class.
SPM_CPU_RANGE_S = (6.8, 8.8)
SPM_SOURCE = "/work/shared/specs/spm_dcm.md (measured on this machine class, 2 vCPUs, Octave 7.3)"
TARGET_TCM_S = 1.0
TARGET_SPEEDUP = 20.0
MODES = ("exact", "spm")


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per case after a warm-up (default 5)")
    parser.add_argument("--batch", type=int, default=1000, help="spectra in the batched fit (0: skip)")
    parser.add_argument("--sequential", type=int, default=5, help="batch spectra also fitted one by one")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the batch data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator for draws and noise")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="SPM reference folder")
    parser.add_argument("--json", type=str, default=None, help="write all results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.batch < 0 or args.sequential < 0:
        parser.error("--batch and --sequential must be >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    return args


def read_json(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


class LogCounter(logging.Handler):
    """Collects the thalia logger's records (fallback notices, non-convergence warnings) quietly."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        messages = [r.getMessage() for r in self.records]
        self.records.clear()
        return messages


def install_log_counter() -> LogCounter:
    handler = LogCounter()
    log = logging.getLogger("thalia")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def near_prior(space: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, P) draws θ = prior mean + DRAW_SPREAD·prior SD·z (fixed parameters stay at their means)."""
    z = torch.randn(n, space.size, generator=generator, dtype=torch.float64)
    return space.prior_mean_vector() + DRAW_SPREAD * space.prior_var_vector().sqrt() * z


def matched_noise(csd: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Complex noise (F, n, n) with real and imaginary parts ~ N(0, exp(−h)·Q⁻¹), Q = csd_component(csd)."""
    cov = torch.linalg.inv(csd_component(csd)[0])
    root = torch.linalg.cholesky((cov + cov.T) / 2)
    white = torch.randn(2, root.shape[0], generator=generator, dtype=torch.float64)
    noise = math.exp(-NOISE_LOG_PRECISION / 2) * white @ root.T
    return torch.complex(noise[0], noise[1]).reshape(csd.shape)


def tcm_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(θ, CSD) of the TCM case: the first finite draw near the prior."""
    model = TCM()
    forward = model.spectrum_function(TCM_FREQS)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(20):
        theta = near_prior(model.space, 1, generator)[0]
        csd = forward(theta)
        if bool(torch.isfinite(torch.view_as_real(csd)).all()):
            return theta, csd
    raise RuntimeError("no finite TCM spectrum in 20 draws near the prior")


def batch_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(θ (n, P), noisy CSDs (n, F, 1, 1)) for the batch case (CMC, 45 frequencies)."""
    model = CMC()
    generator = torch.Generator().manual_seed(seed)
    thetas = near_prior(model.space, n, generator)
    clean = torch.func.vmap(model.spectrum_function(CMC_FREQS))(thetas)
    return thetas, torch.stack([y + matched_noise(y, generator) for y in clean])


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s, output) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def time_fits(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Cold first fit, one warm-up, then ``repeats`` timed fits; medians and the last posterior."""
    cold_wall, cold_cpu, _ = timed(fn)
    fn()
    runs = [timed(fn) for _ in range(repeats)]
    posterior = runs[-1][2]
    return {
        "cold_wall_s": cold_wall,
        "cold_cpu_s": cold_cpu,
        "wall_s": float(np.median([r[0] for r in runs])),
        "cpu_s": float(np.median([r[1] for r in runs])),
        "wall_min_s": float(min(r[0] for r in runs)),
        "repeats": repeats,
        **describe(posterior),
    }


def describe(posterior: Any) -> dict[str, Any]:
    return {
        "iterations": posterior.iterations,
        "F": posterior.F,
        "converged": posterior.converged,
        "status": posterior.status.value,
        "explained_variance": posterior.explained_variance,
    }


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def bench_tcm(args: argparse.Namespace) -> dict[str, Any]:
    theta, csd = tcm_data(args.seed)
    res = time_fits(lambda: fit_spectrum((TCM_FREQS, csd), "tcm"), args.repeats)
    free = TCM().space.free_mask()
    res.update(n_freqs=len(TCM_FREQS), n_free=int(free.sum()), target_s=TARGET_TCM_S)
    res["meets_target"] = res["wall_s"] < TARGET_TCM_S
    return res


def spm_reference(folder: str) -> dict[str, Any]:
    summary = read_json(os.path.join(folder, "cmc_nlsi_summary.json"))
    return {
        "F": summary["F"],
        "iterations": summary["iterations"],
        "cpu_s": summary["cpu_total_s"],
        "wall_s": summary["time_total_s"],
        "cpu_range_s": list(SPM_CPU_RANGE_S),
        "source": f"{os.path.join(folder, 'cmc_nlsi_summary.json')}; range: {SPM_SOURCE}",
    }


def bench_cmc_reference(args: argparse.Namespace, peer: dict[str, Any]) -> dict[str, Any]:
    table = np.genfromtxt(os.path.join(args.reference, "cmc_nlsi_fit.csv"), delimiter=",", names=True)
    data = (table["Hz"], table["data_re"] + 1j * table["data_im"])
    priors = spm.read_spm_parameters(os.path.join(args.reference, "cmc_nlsi_params.csv"), "prior_mean")
    results = {}
    for mode in MODES:
        res = time_fits(lambda mode=mode: fit_spectrum(data, "cmc", priors=priors, mode=mode), args.repeats)
        res["F_minus_spm"] = res["F"] - peer["F"]
        res["speedup"] = speedups(res, peer)
        results[mode] = res
    return results


def speedups(res: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    low, high = peer["cpu_range_s"]
    slowest = max(res["wall_s"], res["cpu_s"])
    return {
        "spm_cpu_over_wall": peer["cpu_s"] / res["wall_s"],
        "spm_cpu_over_cpu": peer["cpu_s"] / res["cpu_s"],
        "range_over_wall": [low / res["wall_s"], high / res["wall_s"]],
        "range_over_cpu": [low / res["cpu_s"], high / res["cpu_s"]],
        "conservative": low / slowest,
        "meets_target": low / slowest >= TARGET_SPEEDUP,
    }


def bench_batch(args: argparse.Namespace, log: LogCounter) -> dict[str, Any] | None:
    if args.batch == 0:
        return None
    _, ys = batch_data(args.batch, args.seed)
    spectra = [CSD(CMC_FREQS, y, ("LFP1",)) for y in ys]
    res: dict[str, Any] = {"n_spectra": args.batch, "n_freqs": len(CMC_FREQS), "device": args.device}
    try:
        fit_spectra(spectra[:2], "cmc", max_iter=2, device=args.device)  # warm-up (first-call costs)
        log.take()
        wall, cpu, posteriors = timed(lambda: fit_spectra(spectra, "cmc", device=args.device))
    except (RuntimeError, ValueError, TypeError) as err:
        return {**res, "supported": False, "error": f"{type(err).__name__}: {err}"}
    messages = log.take()
    fallback = [m for m in messages if "not vectorisable" in m]
    res.update(
        supported=True,
        wall_s=wall,
        cpu_s=cpu,
        per_spectrum_wall_ms=1e3 * wall / args.batch,
        per_spectrum_cpu_ms=1e3 * cpu / args.batch,
        fraction_converged=float(np.mean([p.converged for p in posteriors])),
        iterations_mean=float(np.mean([p.iterations for p in posteriors])),
        iterations_max=int(max(p.iterations for p in posteriors)),
        vectorised=not fallback,
        fallback_message=fallback[0] if fallback else None,
        warnings=sum(1 for m in messages if "not vectorisable" not in m),
    )
    res["sequential"] = bench_sequential(spectra[: args.sequential], posteriors)
    return res


def bench_sequential(spectra: list[CSD], batched: list[Any]) -> dict[str, Any] | None:
    """The same spectra fitted one by one; max |F_sequential − F_batch| as a consistency check."""
    if not spectra:
        return None
    runs = [timed(lambda s=s: fit_spectrum(s, "cmc")) for s in spectra]
    return {
        "n_spectra": len(spectra),
        "per_spectrum_wall_ms": 1e3 * float(np.mean([r[0] for r in runs])),
        "per_spectrum_cpu_ms": 1e3 * float(np.mean([r[1] for r in runs])),
        "max_abs_F_difference_vs_batch": float(max(abs(r[2].F - b.F) for r, b in zip(runs, batched, strict=False))),
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def fit_row(label: str, r: dict[str, Any], extra: str = "") -> str:
    cells = f"{r['wall_s']:>8.3f}{r['cpu_s']:>8.3f}{r['cold_wall_s']:>8.2f}{r['iterations']:>6d}{r['F']:>10.3f}"
    return f"{label:<26}{cells}{'yes' if r['converged'] else 'NO':>6}  {extra}"


def print_fits(res: dict[str, Any]) -> None:
    header = f"{'single fits':<26}{'wall s':>8}{'cpu s':>8}{'cold s':>8}{'iter':>6}{'F':>10}{'conv':>6}  notes"
    print(header + "\n" + "-" * (len(header) + 30))
    tcm = res["tcm"]
    target = f"target < {tcm['target_s']:g} s: {'met' if tcm['meets_target'] else 'NOT met'}"
    print(fit_row(f"TCM, {tcm['n_free']} free, {tcm['n_freqs']} freqs", tcm, target))
    peer = res["spm_recorded"]
    for mode, r in res["cmc_reference"].items():
        s = r["speedup"]
        note = (
            f"F−SPM {r['F_minus_spm']:+.4f}; x{s['spm_cpu_over_wall']:.1f} wall, x{s['spm_cpu_over_cpu']:.1f} cpu "
            f"(vs {peer['cpu_s']:.1f} s); x{s['conservative']:.1f} vs {peer['cpu_range_s'][0]:g} s: "
            f"{'met' if s['meets_target'] else 'NOT met'}"
        )
        print(fit_row(f"CMC reference, {mode}", r, note))
    print(
        f"{'SPM spm_nlsi_GN (recorded)':<26}{peer['wall_s']:>8.2f}{peer['cpu_s']:>8.2f}{'':>8}"
        f"{peer['iterations']:>6d}{peer['F']:>10.3f}{'yes':>6}  CPU range {peer['cpu_range_s'][0]:g}–"
        f"{peer['cpu_range_s'][1]:g} s"
    )


def print_batch(batch: dict[str, Any] | None) -> None:
    if batch is None:
        return
    print(f"\nBatch: {batch['n_spectra']} noisy CMC spectra ({batch['n_freqs']} freqs) in one fit_spectra call")
    if not batch["supported"]:
        print(f"  device {batch['device']}: unsupported by the inference API ({batch['error']})")
        return
    print(
        f"  total {batch['wall_s']:.2f} s wall, {batch['cpu_s']:.2f} s CPU; per spectrum "
        f"{batch['per_spectrum_wall_ms']:.1f} ms wall, {batch['per_spectrum_cpu_ms']:.1f} ms CPU"
    )
    print(
        f"  converged {100 * batch['fraction_converged']:.1f} %; iterations mean {batch['iterations_mean']:.1f}, "
        f"max {batch['iterations_max']}; vectorised: {batch['vectorised']}"
    )
    if batch["fallback_message"]:
        print(f"  library fell back to a loop: {batch['fallback_message']}")
    seq = batch["sequential"]
    if seq:
        print(
            f"  one by one (fit_spectrum, first {seq['n_spectra']}): {seq['per_spectrum_wall_ms']:.1f} ms wall per "
            f"spectrum; max |F_seq − F_batch| = {seq['max_abs_F_difference_vs_batch']:.2e}"
        )


def print_table(res: dict[str, Any]) -> None:
    env = res["environment"]
    print(f"\nVariational Laplace inversions — {env['cpu_model']}")
    print(f"torch {env['torch']}, {env['torch_threads']} thread(s); medians of {res['config']['repeats']} fits")
    print(f"SPM side not re-run (Octave {'available' if env['octave_available'] else 'not installed'}): recorded")
    print("cold s = first fit of the case in this process; x = SPM CPU seconds / thalia seconds\n")
    print_fits(res)
    print_batch(res["batch"])


def write_json(path: str, res: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(res, handle, indent=2, default=str)
    print(f"\nresults written to {path}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    log = install_log_counter()
    res: dict[str, Any] = {
        "config": {**vars(args), "draw_spread_sd": DRAW_SPREAD, "noise_log_precision": NOISE_LOG_PRECISION},
        "environment": environment(args.threads, args.device),
        "spm_recorded": spm_reference(args.reference),
    }
    t0 = time.perf_counter()
    res["tcm"] = bench_tcm(args)
    res["cmc_reference"] = bench_cmc_reference(args, res["spm_recorded"])
    res["batch"] = bench_batch(args, log)
    res["environment"].update(loadavg_end=load_average(), wall_s=time.perf_counter() - t0)
    print_table(res)
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()

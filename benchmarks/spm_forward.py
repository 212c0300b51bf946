"""Benchmark: one SPM-model CSD (CMC, CMM_NMDA), thalia vs SPM's recorded ``spm_csd_mtf`` timings.

Measured per model (``cmc``, ``cmm_nmda``) at SPM's prior means (read from SPM's parameter tables
``cmc_priors.csv`` / ``cmm_nmda_priors.csv``), one source, 45 frequencies 4..48 Hz, each call including
the Jacobian, timed back to back after a warm-up (wall time by ``time.perf_counter``, CPU time by
``time.process_time``):

1. "thalia exact (default)": ``CMC().spectral_response(P, freqs)`` / ``CMMNMDA().spectral_response(P, freqs)``
   — exact closed-form Jacobian; CMC folds the delays in with the exact delayed modes, CMM_NMDA to
   first order;
2. "thalia SPM-reproduction": ``spm.csd(name, P, freqs)`` — SPM's forward-difference Jacobian (step e⁻⁸)
   and SPM's delay operator, the mode that reproduces SPM to 1e-10.

Each output is also compared with the CSD SPM recorded at the same parameters (max relative difference).

SPM's side is not re-run: Octave is not installed here. Its timings are the ones recorded under Octave
on this machine class in ``cmc_csd_prior.json`` / ``cmm_nmda_csd_prior.json`` (``timing_s``: mean wall and
CPU seconds per ``spm_csd_mtf`` call). The documented range on this machine class is 28–46 ms CPU per call
(CMC) and 26–35 ms (CMM_NMDA). Speed-ups are SPM's recorded CPU mean / thalia's median wall time, and the
low end of the documented range / thalia's median wall time; thalia's CPU time is reported alongside, to
compare like with like.

It also times ``model.csd_batch`` (one ``torch.func.vmap`` call) on ``--batch`` parameter sets drawn from
the prior (default 1000).

Run from the repository root::

    python benchmarks/spm_forward.py --json out/bench/spm_forward.json
    python benchmarks/spm_forward.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _machine import environment

from thalia.mass import CMC, CMMNMDA, spm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(REPO_ROOT, "tests", "reference", "data", "spm")
FREQS = np.arange(4.0, 49.0)  # 45 frequencies, 4..48 Hz
MODELS = {"cmc": CMC, "cmm_nmda": CMMNMDA}
#: SPM's CPU time per spm_csd_mtf call under Octave on this machine class (documented range, ms).
SPM_DOCUMENTED_CPU_MS = {"cmc": (28.0, 46.0), "cmm_nmda": (26.0, 35.0)}
MODES = {
    "exact": "thalia exact (default)",
    "spm_reproduction": "thalia SPM-reproduction",
}


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per model and mode (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before timing (default 10)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="SPM reference folder (tables and JSON)")
    parser.add_argument("--json", type=str, default=None, help="write all results to this JSON file")
    parser.add_argument("--batch", type=int, default=1000, help="parameter sets for csd_batch (0: skip)")
    args = parser.parse_args(argv)
    for name in ("threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.warmup < 0 or args.batch < 0:
        parser.error("--warmup and --batch must be >= 0")
    return args


def read_json(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def load_reference(folder: str, name: str) -> tuple[Any, dict[str, Any]]:
    """SPM's prior means as a ParameterSet, and SPM's recorded prior CSD and timings for ``name``."""
    P = spm.read_spm_parameters(os.path.join(folder, f"{name}_priors.csv"))
    record = read_json(os.path.join(folder, f"{name}_csd_prior.json"))
    if not np.array_equal(np.asarray(record["Hz"], dtype=float), FREQS):
        raise ValueError(f"{name}: SPM's recorded frequencies are not 4..48 Hz")
    return P, record


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def time_calls(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[list[float], list[float], Any]:
    """Wall and CPU seconds of ``repeats`` back-to-back calls after ``warmup`` untimed ones; last output."""
    out = None
    for _ in range(warmup):
        out = fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return wall, cpu, out


def stats_ms(seconds: list[float]) -> dict[str, float | int]:
    ms = np.asarray(seconds) * 1e3
    return {
        "n": int(ms.size),
        "median_ms": float(np.median(ms)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def max_rel(csd: Any, record: dict[str, Any]) -> float:
    """max |y − y_SPM| / max |y_SPM| over the 45 frequencies (channel 1, 1)."""
    y = np.asarray(csd.detach().cpu() if isinstance(csd, torch.Tensor) else csd)[:, 0, 0]
    ref = np.asarray(record["csd_re"]) + 1j * np.asarray(record["csd_im"])
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def bench_mode(fn: Callable[[], Any], record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    wall, cpu, out = time_calls(fn, args.repeats, args.warmup)
    csd = out.csd if hasattr(out, "csd") else out
    return {"wall": stats_ms(wall), "cpu": stats_ms(cpu), "vs_spm_csd_max_rel": max_rel(csd, record)}


def spm_recorded(name: str, record: dict[str, Any]) -> dict[str, Any]:
    timing = record["timing_s"]
    low, high = SPM_DOCUMENTED_CPU_MS[name]
    return {
        "wall_mean_ms": 1e3 * timing["spm_csd_mtf_mean"],
        "cpu_mean_ms": 1e3 * timing["spm_csd_mtf_cpu_mean"],
        "repetitions": timing["repetitions"],
        "documented_cpu_range_ms": [low, high],
    }


def speedups(mode: dict[str, Any], peer: dict[str, Any]) -> dict[str, float]:
    wall, cpu = mode["wall"]["median_ms"], mode["cpu"]["median_ms"]
    low = peer["documented_cpu_range_ms"][0]
    return {
        "spm_cpu_mean_over_thalia_median": peer["cpu_mean_ms"] / wall,
        "spm_documented_low_over_thalia_median": low / wall,
        "spm_cpu_mean_over_thalia_cpu_median": peer["cpu_mean_ms"] / cpu if cpu > 0 else None,
    }


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    P, record = load_reference(args.reference, name)
    model = MODELS[name]()
    calls = {
        "exact": lambda: model.spectral_response(P, FREQS),
        "spm_reproduction": lambda: spm.csd(name, P, FREQS),
    }
    peer = spm_recorded(name, record)
    modes = {key: bench_mode(fn, record, args) for key, fn in calls.items()}
    for mode in modes.values():
        mode["speedup"] = speedups(mode, peer)
    return {"thalia": modes, "spm_recorded": peer, "batch": bench_batch(model, args)}


def bench_batch(model: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """``model.csd_batch`` (one vmap call) on ``--batch`` parameter sets drawn from the prior."""
    if args.batch == 0:
        return None
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(args.batch, model.space.size, generator=generator, dtype=torch.float64)
    thetas = model.space.prior_mean_vector() + noise * model.space.prior_var_vector().sqrt()
    model.csd_batch(thetas[:8], FREQS)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    out = model.csd_batch(thetas, FREQS)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "n_sets": args.batch,
        "wall_s": wall,
        "cpu_s": cpu,
        "per_set_ms": 1e3 * wall / args.batch,
        "all_finite": bool(torch.isfinite(out).all()),
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def print_model(name: str, res: dict[str, Any]) -> None:
    peer = res["spm_recorded"]
    low, high = peer["documented_cpu_range_ms"]
    print(f"\n{name.upper()}")
    header = f"{'':<28}{'wall med':>9}{'wall min':>9}{'cpu med':>9}{'x SPM cpu':>10}{f'x {low:g}ms':>9}{'vs SPM':>10}"
    print(header + "\n" + "-" * len(header))
    for key, label in MODES.items():
        m = res["thalia"][key]
        s = m["speedup"]
        cells = [m["wall"]["median_ms"], m["wall"]["min_ms"], m["cpu"]["median_ms"]]
        row = "".join(f"{v:>9.3f}" for v in cells)
        row += f"{s['spm_cpu_mean_over_thalia_median']:>9.1f}x{s['spm_documented_low_over_thalia_median']:>8.1f}x"
        print(f"{label:<28}{row}{m['vs_spm_csd_max_rel']:>10.1e}")
    print(
        f"{'SPM spm_csd_mtf (recorded)':<28}{peer['wall_mean_ms']:>9.3f}{'':>9}{peer['cpu_mean_ms']:>9.3f}"
        f"   (means of {peer['repetitions']} calls; documented CPU range {low:g}–{high:g} ms)"
    )
    batch = res.get("batch")
    if batch:
        print(
            f"{'thalia csd_batch (vmap)':<28}{batch['n_sets']} prior draws in {batch['wall_s']:.3f} s wall, "
            f"{batch['cpu_s']:.3f} s CPU: {batch['per_set_ms']:.3f} ms per set"
        )


def print_table(res: dict[str, Any]) -> None:
    env = res["environment"]
    print(f"\nSPM-model CSD, 45 freqs (4..48 Hz), 1 source, Jacobian included — {env['cpu_model']}")
    print(f"torch {env['torch']}, {env['torch_threads']} thread(s), {res['config']['repeats']} calls back to back")
    version = res["spm_run_info"].get("octave_version", "?")
    print(f"SPM side: {res['spm_note']}")
    print(f"  (Octave {version}, SPM {res['spm_run_info'].get('spm_commit', '?')[:10]}; {res['config']['reference']})")
    print("times in ms; x SPM cpu = SPM CPU mean / thalia wall median; vs SPM = max rel. CSD difference")
    for name in MODELS:
        print_model(name, res["models"][name])


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def write_json(path: str, res: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(res, handle, indent=2, default=str)
    print(f"\nresults written to {path}")


def spm_note(octave_available: bool) -> str:
    octave = "available but not used" if octave_available else "not installed here"
    return (
        f"Octave {octave}, so SPM is not run side by side; its timings are the ones recorded "
        "under Octave on this machine class"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    run_info = os.path.join(args.reference, "run_info.json")
    res: dict[str, Any] = {
        "config": {**vars(args), "freqs_hz": FREQS.tolist(), "modes": MODES},
        "environment": environment(args.threads),
        "spm_run_info": read_json(run_info) if os.path.exists(run_info) else {},
    }
    res["spm_note"] = spm_note(res["environment"]["octave_available"])
    t0 = time.perf_counter()
    res["models"] = {name: bench_model(name, args) for name in MODELS}
    res["environment"].update(loadavg_end=[round(v, 2) for v in os.getloadavg()], wall_s=time.perf_counter() - t0)
    print_table(res)
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()

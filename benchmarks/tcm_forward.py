"""Benchmark: one TCM forward spectrum, thalia vs a tcm_py-like finite-difference baseline, plus vmap batches.

Measured side by side in one run, on the same parameter draws θ = prior mean + sqrt(prior var)·N(0, 1)
(seeded ``torch.Generator``; draws whose fixed point does not converge are skipped and recorded):

1. thalia's eager forward spectrum ``model.csd(p, freqs)`` (adaptive damped Newton on the membrane
   potentials with the exact Jacobian, exact analytic state Jacobian, Schur-reduced transfer function,
   CSD) at 90 frequencies (1..90 Hz), one source;
2. a "tcm_py-like" baseline built on thalia's own flow, so that only the algorithm differs: tcm_py's
   damped Gauss–Newton/Levenberg fixed-point search on the full 56-state flow with a central
   finite-difference Jacobian (2n = 112 flow evaluations per Jacobian, step 1e-6), started from the
   default parameters' fixed point (the start thalia uses; from tcm_py's template state about half of
   the prior draws fail), the state Jacobian (and ∂f/∂u) by central differences again, then 90 dense
   56×56 complex solves with the delays applied element-wise and the noise spectra written out here.
   The flow's operators are built once per parameter set (cheaper than tcm_py's f). Its spectrum is
   checked against thalia's;
3. a batch of parameter sets through ``torch.func.vmap(model.csd_tensor)``, checked against the eager
   path, with non-finite and non-converged outputs counted.

Run from the repository root::

    python benchmarks/tcm_forward.py --json out/bench_tcm.json      # full run (a few minutes, 1 thread)
    python benchmarks/tcm_forward.py --quick                          # smoke run (seconds)
    python benchmarks/tcm_forward.py --device cuda --json out/bench_tcm_cuda.json

Targets (issue): one forward spectrum under 3 ms on one CPU thread (tcm_py: 0.11–0.14 s idle, 62 ms
for f + its FD Jacobian alone); 1000 parameter sets through vmap in under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import subprocess
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _machine import environment, load_average

from thalia.mass import TCM, tcm_flow
from thalia.params import ParameterSet

Tensor = torch.Tensor
DTYPE = torch.float64
FD_STEP = 1e-6
FP_TOL = 1e-10  # thalia's fixed-point tolerance (max |f|)
BASELINE_TOL = 1e-6  # tcm_py's fixed-point tolerance (‖f‖₂)
BASELINE_ACCEPT = 1e-2  # tcm_py keeps a solution with ‖f‖₂ below max(1e-2, 10·tol)
BATCH_FP_TOL = 1e-8  # a batch fixed point counts as converged below this max |f|
TARGET_EAGER_MS = 3.0
#: tcm_py as measured on this machine class (tcm_model.md, Part A and Part B §11); not re-run here.
TCM_PY_REFERENCE = {
    "forward_spectrum_s_idle": [0.11, 0.14],
    "forward_spectrum_s_under_load": 0.33,
    "f_plus_fd_jacobian_ms_idle": 62.0,
    "one_f_ms": 0.70,
    "source": "/work/shared/specs/tcm_model.md (issue text and Part B §11)",
}
TARGET_BATCH_1000_S = 1.0


# ---------------------------------------------------------------------------------------------
# Setup: arguments, environment, draws
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for thalia (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--n-draws", type=int, default=50, help="parameter sets for the per-call timings")
    parser.add_argument("--batch", type=int, default=1000, help="parameter sets in one vmap call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per draw (and timed batch calls)")
    parser.add_argument("--n-freqs", type=int, default=90, help="frequencies 1..n_freqs Hz (default 90)")
    parser.add_argument("--n-check", type=int, default=5, help="batch rows checked against the eager path")
    parser.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator for the draws")
    parser.add_argument("--json", type=str, default=None, help="write all results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 draws, batch 64, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_draws, args.batch, args.repeats = min(args.n_draws, 5), min(args.batch, 64), 1
    for name in ("threads", "n_draws", "batch", "repeats", "n_freqs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def provenance() -> dict[str, Any]:
    """Git commit and dirty flag of the checkout (read-only git calls), and a hash of the prior means."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: dict[str, Any] = {"prior_mean_sha1": hashlib.sha1(TCM().space.prior_mean_vector().numpy()).hexdigest()[:12]}
    try:
        git = ["git", "-C", root]
        out["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True).stdout
        out["git_src_dirty"] = bool(status.strip())
    except OSError:
        out["git_commit"] = None
    return out


def draw_thetas(model: TCM, n: int, seed: int) -> Tensor:
    """(n, P) θ = prior mean + sqrt(prior var)·z, z ~ N(0, 1) from a seeded CPU generator."""
    generator = torch.Generator().manual_seed(seed)
    space = model.space
    z = torch.randn(n, space.size, generator=generator, dtype=DTYPE)
    return space.prior_mean_vector() + space.prior_var_vector().sqrt() * z


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------
def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def stats_ms(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1e3
    return {
        "n": int(ms.size),
        "median_ms": float(np.median(ms)),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def rel_diff(a: Tensor, b: Tensor) -> float:
    """max over entries of |a − b| / |b| (both moved to the CPU)."""
    a, b = a.detach().cpu(), b.detach().cpu()
    return float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())


# ---------------------------------------------------------------------------------------------
# The tcm_py-like baseline: finite differences on thalia's flow, dense delayed solves
# ---------------------------------------------------------------------------------------------
def make_flow(model: TCM, t: dict[str, Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """f(x, u) for one parameter set, with the flow's operators built once.

    About 0.13 ms per call instead of model.flow's 0.4 ms and tcm_py's 0.7 ms: the baseline is if anything
    faster than the original, so the comparison is conservative.
    """
    coupling = model.coupling(t)
    return lambda x, u: tcm_flow.flow_from_coupling(x, u, coupling, model.cfg)


def fd_jacobian(fun: Callable[[Tensor], Tensor], x: Tensor, step: float = FD_STEP) -> Tensor:
    """Central differences, one column at a time: 2·len(x) evaluations of ``fun``."""
    columns = []
    for j in range(x.numel()):
        e = torch.zeros_like(x)
        e[j] = step
        columns.append((fun(x + e) - fun(x - e)) / (2.0 * step))
    return torch.stack(columns, dim=1)


def fd_newton(fun: Callable[[Tensor], Tensor], x0: Tensor, tol: float = BASELINE_TOL, max_iter: int = 200):
    """tcm_py's ``find_fixed_point`` (tcm_model.md Part B §5.2) with its finite-difference Jacobian.

    Damped Gauss–Newton/Levenberg on ½‖f‖² with column scaling s = clip(1/(|x| + 1), 1e−3, 1e3):
    (J_sᵀJ_s + λI) δ = −J_sᵀf, J_s = J/s, λ = 1e−8 + 1e−6‖f‖/‖x‖, dx = δ/s; backtracking on t (halved
    up to 25 times), accepting ‖f_new‖ ≤ ‖f‖(1 − 1e−4 t) or ‖f_new‖ < ‖f‖; stops at ‖f‖ < tol or
    when no step is accepted or ‖t·dx‖ < 1e−10(‖x‖ + 1). Returns (x, iterations, ‖f‖, converged).
    """
    x, f = x0.clone(), fun(x0)
    norm = float(f.norm())
    eye = torch.eye(x.numel(), dtype=x.dtype)
    for iteration in range(max_iter):
        if norm < tol:
            return x, iteration, norm, True
        scale = (1.0 / (x.abs() + 1.0)).clamp(1e-3, 1e3)
        js = fd_jacobian(fun, x) / scale[None, :]
        lam = 1e-8 + 1e-6 * norm / float(x.norm())
        dx = torch.linalg.solve(js.T @ js + lam * eye, -js.T @ f) / scale
        t, accepted = 1.0, False
        for _ in range(25):
            trial = x + t * dx
            trial_f = fun(trial)
            trial_norm = float(trial_f.norm()) if bool(torch.isfinite(trial_f).all()) else math.inf
            if trial_norm <= norm * (1.0 - 1e-4 * t) or trial_norm < norm:
                accepted = True
                break
            t /= 2.0
        if not accepted or float((t * dx).norm()) < 1e-10 * (float(x.norm()) + 1.0):
            return x, iteration, norm, False
        x, f, norm = trial, trial_f, trial_norm
    return x, max_iter, norm, norm < tol


def power_law(amplitude: Tensor, exponent: Tensor, freqs: Tensor, offset: float = 0.0) -> Tensor:
    """exp(amplitude + offset)·f^(−exp(exponent)), written here independently of thalia.mass.noise."""
    return torch.exp(amplitude + offset) * freqs ** (-torch.exp(exponent))


def baseline_csd(model: TCM, t: dict[str, Tensor], freqs: Tensor, x0: Tensor) -> dict[str, Any]:
    """tcm_py-like forward spectrum (F,) for one source and one channel, all on the CPU."""
    f = make_flow(model, t)
    u0 = torch.zeros(model.n_inputs, dtype=DTYPE)
    x, iterations, residual, converged = fd_newton(lambda state: f(state, u0), x0)
    A = fd_jacobian(lambda state: f(state, u0), x)
    B = fd_jacobian(lambda u: f(x, u), u0)
    C, D = model.observation(t), model.delays(t)
    s = torch.complex(torch.zeros_like(freqs), 2.0 * math.pi * freqs)
    system = s[:, None, None] * torch.eye(A.shape[0], dtype=s.dtype) - A * torch.exp(-s[:, None, None] * D)
    H = C.to(s.dtype) @ torch.linalg.solve(system, B.to(s.dtype).expand(len(freqs), *B.shape))  # (F, 1, 1)
    gu = power_law(t["a"][0, 0], t["a"][1, 0], freqs)
    gn = power_law(t["b"][0], t["b"][1], freqs, offset=-2.0)
    gs = power_law(t["c"][0, 0], t["c"][1, 0], freqs, offset=-2.0)
    csd = H[:, 0, 0].abs() ** 2 * gu + gn + gs
    return {"csd": csd, "x": x, "iterations": iterations, "residual": residual, "converged": converged}


def f_and_fd_jacobian(model: TCM, t: dict[str, Tensor], x: Tensor) -> Tensor:
    """What tcm_py's 62 ms figure measures: f once plus its central-difference Jacobian (2n more f)."""
    f = make_flow(model, t)
    u0 = torch.zeros(model.n_inputs, dtype=DTYPE)
    f(x, u0)
    return fd_jacobian(lambda state: f(state, u0), x)


# ---------------------------------------------------------------------------------------------
# Device audit (which library calls work on the chosen device)
# ---------------------------------------------------------------------------------------------
def device_audit(model: TCM, t_cpu: dict[str, Tensor], freqs: Tensor, device: torch.device) -> list[dict[str, Any]]:
    """Run each public piece on ``device`` in isolation (CPU θ and freqs moved there); record output device or error."""
    x = TCM().fixed_point(t_cpu, warn=False).x.detach().to(device)  # fresh model: no cache
    t, freqs = {k: v.to(device) for k, v in t_cpu.items()}, freqs.to(device)
    u = torch.zeros(model.n_inputs, dtype=DTYPE, device=device)
    info = {  # configuration and caches: may stay on the CPU if the compute calls move them
        "TCM.lead_field": lambda: model.lead_field,
        "TCM.initial_state()": model.initial_state,
        "TCM._default_start() (cached start of every solve)": model._default_start,
    }
    required = {  # outputs of these must be on ``device``
        "TCM.coupling(p).W": lambda: model.coupling(t).W,
        "TCM.flow(x, u, p)": lambda: model.flow(x, u, t),
        "TCM.jacobian(x, p)": lambda: model.jacobian(x, t),
        "TCM.input_matrix(x, p)": lambda: model.input_matrix(x, t),
        "TCM.delay_blocks(p)": lambda: model.delay_blocks(t)[0],
        "TCM.observation(p)": lambda: model.observation(t),
        "TCM.transfer_from_state(x, p, freqs, 'schur')": lambda: model.transfer_from_state(x, t, freqs),
        "TCM.transfer_from_state(x, p, freqs, 'dense')": lambda: model.transfer_from_state(x, t, freqs, "dense"),
        "TCM.fixed_point(p)": lambda: model.fixed_point(t, warn=False).x,
        "TCM.csd(p, freqs)": lambda: model.csd(t, freqs).data,
        "vmap(TCM.csd_tensor)": lambda: torch.func.vmap(lambda th: model.csd_tensor(model.space.unpack(th), freqs))(
            model.space.pack(t)[None].expand(2, -1)
        ),
    }
    results = []
    for name, probe in [*info.items(), *required.items()]:
        entry: dict[str, Any] = {"call": name, "required": name in required}
        try:
            out = probe()
            entry.update(ok=out.device.type == device.type, output_device=str(out.device))
        except Exception as err:  # noqa: BLE001 - the audit records every failure
            entry.update(ok=False, error=f"{type(err).__name__}: {str(err)[:300]}")
        results.append(entry)
    return results


# ---------------------------------------------------------------------------------------------
# The three measurements
# ---------------------------------------------------------------------------------------------
def screen_draws(model: TCM, thetas: Tensor, seed: int) -> tuple[list[int], dict[str, Any]]:
    """Indices of draws whose (eager) fixed point converges, and a record of the screening."""
    kept, skipped, unstable, iterations = [], [], 0, []
    for i, theta in enumerate(thetas):
        fp = model.fixed_point(ParameterSet.from_vector(model.space, theta), warn=False)
        if not fp.converged:
            skipped.append({"draw": i, "residual": fp.residual, "iterations": fp.iterations})
            continue
        kept.append(i)
        iterations.append(fp.iterations)
        unstable += int(not fp.stable)
    record = {
        "n_drawn": len(thetas),
        "n_converged": len(kept),
        "n_unstable": unstable,
        "thalia_newton_iterations_median": float(np.median(iterations)) if iterations else None,
        "thalia_newton_iterations_max": max(iterations) if iterations else None,
        "not_converged": skipped,
        "seed": seed,
    }
    return kept, record


def time_components(model: TCM, t: dict[str, Tensor], x: Tensor, times: dict[str, list[float]], repeats: int):
    """CPU timings at the fixed point x: f + FD Jacobian, f + exact Jacobian, one f (two ways)."""
    u0 = torch.zeros(model.n_inputs, dtype=DTYPE)
    coupling = model.coupling(t)
    nosync = lambda: None  # noqa: E731
    for _ in range(repeats):
        times["fd_jac"].append(timed(lambda: f_and_fd_jacobian(model, t, x), nosync)[0])
        times["exact_jac"].append(timed(lambda: (model.flow(x, u0, t), model.jacobian(x, t)), nosync)[0])
        times["flow"].append(timed(lambda: model.flow(x, u0, t), nosync)[0])
        times["flow_c"].append(timed(lambda: tcm_flow.flow_from_coupling(x, u0, coupling, model.cfg), nosync)[0])


def summarize_agreement(rows: list[dict[str, float]]) -> dict[str, Any]:
    def column(key: str) -> list[float]:
        return [r[key] for r in rows]

    return {
        "baseline_vs_thalia_csd_max_rel": max(column("csd")) if rows else None,
        "baseline_vs_thalia_csd_median_rel": float(np.median(column("csd"))) if rows else None,
        "baseline_vs_thalia_fixed_point_max_abs": max(column("x")) if rows else None,
        "thalia_schur_vs_dense_csd_max_rel": max(column("schur_dense")) if rows else None,
        "n_compared": len(rows),
    }


def run_per_call(models: tuple[TCM, TCM], thetas: Tensor, kept: list[int], freqs: Tensor, args, device, ctx):
    """Interleaved per-call timings (thalia eager, FD baseline and parts) with agreement checks.

    ``models`` = (CPU model, device model); thalia's eager path runs on ``device`` (inside ``ctx``),
    the baseline and the component timings on the CPU.
    """
    model, model_dev = models
    sync, freqs_dev = synchronizer(device), freqs.to(device)
    x_start = model.fixed_point(model.default_parameters()).x.detach()  # tcm_py's stored M.x analogue
    names = ("eager", "eager_consecutive", "baseline", "fd_jac", "exact_jac", "flow", "flow_c")
    times: dict[str, list[float]] = {k: [] for k in names}
    rows, iterations, rejected, loose, eager_out = [], [], [], 0, {}

    def eager_call(p_dev):
        with ctx():
            return model_dev.csd(p_dev, freqs_dev)

    for i in kept:
        t = ParameterSet.from_vector(model.space, thetas[i]).tensors()
        p_dev = ParameterSet(model_dev.space, {k: v.to(device) for k, v in t.items()})  # validated once
        for _ in range(args.repeats):
            dt, eager = timed(lambda p_dev=p_dev: eager_call(p_dev), sync)
            times["eager"].append(dt)
            dt, base = timed(lambda t=t: baseline_csd(model, t, freqs, x_start), lambda: None)
            times["baseline"].append(dt)
        eager_out[i] = eager.data.cpu()
        x = model.fixed_point(t, warn=False).x.detach()
        time_components(model, t, x, times, args.repeats)
        iterations.append(base["iterations"])
        if not base["residual"] < BASELINE_ACCEPT:
            rejected.append({"draw": i, "residual": base["residual"], "iterations": base["iterations"]})
            continue
        loose += not base["converged"]
        dense = model.csd_from_state(x, t, freqs, method="dense")
        rows.append({
            "csd": rel_diff(base["csd"], eager_out[i][:, 0, 0].real),
            "x": float((base["x"] - x).abs().max()),
            "schur_dense": rel_diff(model.csd_from_state(x, t, freqs, method="schur"), dense),
        })  # fmt: skip
    # the same draws back to back (as in a fit's loop), without the baseline in between
    for _ in range(args.repeats):
        for i in kept:
            p_dev = ParameterSet(model_dev.space, {k: v.to(device) for k, v in model.space.unpack(thetas[i]).items()})
            times["eager_consecutive"].append(timed(lambda p_dev=p_dev: eager_call(p_dev), sync)[0])
    return {
        "times": times,
        "eager_out": eager_out,
        "baseline_iterations_median": float(np.median(iterations)) if iterations else None,
        "baseline_not_converged": rejected,
        "baseline_accepted_above_tol": loose,
        "agreement": summarize_agreement(rows),
    }


def batch_function(model: TCM, freqs: Tensor) -> Callable[[Tensor], Tensor]:
    return torch.func.vmap(lambda theta: model.csd_tensor(model.space.unpack(theta), freqs))


def batch_residuals(model: TCM, thetas: Tensor) -> Tensor:
    """max |f(x*)| of every batch fixed point (the fixed-step Newton of csd_tensor), (N,)."""
    u0 = torch.zeros(model.n_inputs, dtype=DTYPE, device=thetas.device)

    def residual(theta: Tensor) -> Tensor:
        p = model.space.unpack(theta)
        return model.flow(model.fixed_point_state(p), u0, p).abs().max()

    return torch.func.vmap(residual)(thetas)


def run_batch(model: TCM, thetas: Tensor, freqs: Tensor, eager_out: dict, args, device, ctx) -> dict[str, Any]:
    """vmap over ``len(thetas)`` sets on ``device``: timings, non-finite / non-converged counts, eager check."""
    sync = synchronizer(device)
    thetas, freqs = thetas.to(device), freqs.to(device)
    fn = batch_function(model, freqs)

    def call(x: Tensor) -> Tensor:
        with ctx():
            return fn(x)

    warm, _ = timed(lambda: call(thetas[: min(8, len(thetas))]), sync)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    totals, out = [], None
    for _ in range(args.repeats):
        dt, out = timed(lambda: call(thetas), sync)
        totals.append(dt)
    out = out.cpu()
    non_finite = int((~(torch.isfinite(out.real) & torch.isfinite(out.imag)).reshape(len(out), -1).all(-1)).sum())
    with ctx():
        residuals = batch_residuals(model, thetas).cpu()
    checked = [i for i in sorted(eager_out) if i < len(out)][: args.n_check]
    errors = [rel_diff(out[i], eager_out[i]) for i in checked]
    total = float(np.median(totals))
    return {
        "n_sets": len(thetas),
        "warmup_s_8_sets": warm,
        "total_s_median": total,
        "total_s_min": min(totals),
        "total_s_all": totals,
        "ms_per_set": 1e3 * total / len(thetas),
        "projected_s_per_1000_sets": 1e3 * total / len(thetas),
        "non_finite_outputs": non_finite,
        "fixed_points_not_converged": int((~(residuals < BATCH_FP_TOL)).sum()),
        "fixed_point_tolerance": BATCH_FP_TOL,
        "eager_rows_checked": checked,
        "vs_eager_max_rel": max(errors) if errors else None,
        "cuda_peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def print_table(res: dict[str, Any]) -> None:
    env, per, batch, agr = res["environment"], res["per_call"], res["batch"], res["agreement"]
    print(
        f"\nTCM forward spectrum, {res['config']['n_freqs']} freqs, 1 source — {env['device_name']} ({env['device']}),"
    )
    print(
        f"torch {env['torch']}, {env['torch_threads']} thread(s), load {env['loadavg_start']} -> {env['loadavg_end']}"
    )
    d = res["draws"]
    print(f"draws: {d['n_drawn']} drawn, {d['n_converged']} converged ({d['n_unstable']} unstable, undelayed J); "
          f"Newton iterations: thalia {fmt(d['thalia_newton_iterations_median'])}, "
          f"FD baseline {fmt(per['baseline_newton_iterations_median'])} (medians)")  # fmt: skip
    print(
        f"git {str(env.get('git_commit'))[:10]} (src dirty: {env.get('git_src_dirty')}), "
        f"prior means sha1 {env['prior_mean_sha1']}"
    )
    print(f"\n{'per call (ms)':<52}{'median':>9}{'p10':>9}{'p90':>9}{'min':>9}{'n':>6}")
    for label, key in (
        ("thalia eager model.csd (exact J, Schur)", "thalia_eager_csd"),
        ("  same, draws back to back (no baseline between)", "thalia_eager_csd_consecutive"),
        ("tcm_py-like FD baseline (FD Newton, FD J, dense)", "baseline_fd_csd"),
        ("  f + FD Jacobian (113 f evaluations)", "baseline_f_plus_fd_jacobian"),
        ("  thalia f + exact Jacobian (model.flow + jacobian)", "thalia_f_plus_exact_jacobian"),
        ("  one f: model.flow (rebuilds coupling)", "flow_model"),
        ("  one f: flow_from_coupling (coupling cached)", "flow_cached_coupling"),
    ):
        s = per[key]
        cells = "".join(f"{fmt(s.get(k)):>9}" for k in ("median_ms", "p10_ms", "p90_ms", "min_ms"))
        print(f"{label:<52}{cells}{s['n']:>6}")
    vs_base, vs_tcm_py = res["speedup_eager_vs_baseline"], res["tcm_py_reference"]["speedup_eager_vs_tcm_py_idle_0.11s"]
    print(f"speed-up of thalia eager: {fmt(vs_base)}x vs the FD baseline (median/median), "
          f"{fmt(vs_tcm_py)}x vs tcm_py's 0.11 s (idle, quoted)")  # fmt: skip
    print(f"\nbatch vmap(csd_tensor): {batch['n_sets']} sets in {batch['total_s_median']:.3f} s "
          f"(min {batch['total_s_min']:.3f} s) = {batch['ms_per_set']:.3f} ms/set; "
          f"non-finite {batch['non_finite_outputs']}, "
          f"fixed points with max|f| > {BATCH_FP_TOL:g}: {batch['fixed_points_not_converged']}")  # fmt: skip
    if batch["cuda_peak_memory_gib"] is not None:
        print(f"  CUDA peak memory {batch['cuda_peak_memory_gib']:.2f} GiB")
    print("\nagreement (max relative difference):")
    print(f"  FD baseline vs thalia CSD        {fmt(agr['baseline_vs_thalia_csd_max_rel'])} "
          f"(median {fmt(agr['baseline_vs_thalia_csd_median_rel'])}, n={agr['n_compared']}); "
          f"fixed points max|dx| {fmt(agr['baseline_vs_thalia_fixed_point_max_abs'])}")  # fmt: skip
    print(f"  thalia Schur vs dense CSD        {fmt(agr['thalia_schur_vs_dense_csd_max_rel'])}")
    print(f"  batch vs eager CSD               {fmt(batch['vs_eager_max_rel'])} (rows {batch['eager_rows_checked']})")
    tg = res["targets"]
    print(f"\ntargets: eager < {TARGET_EAGER_MS} ms: {tg['eager_under_3ms']}; "
          f"1000 sets < {TARGET_BATCH_1000_S} s: {tg['batch_1000_under_1s']}")  # fmt: skip
    bad = [a for a in res.get("device_audit", []) if not a["ok"]]
    if bad:
        print(f"\ndevice audit: {len(bad)} call(s) failed or returned tensors off {env['device']}:")
        for a in bad:
            kind = "REQUIRED" if a["required"] else "info"
            print(f"  [{kind}] {a['call']}: {a.get('error', a.get('output_device'))}")
    if res["config"].get("default_device_workaround"):
        print("  -> thalia ran inside torch.device(...) (default-device workaround; adds Python overhead per op)")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def setup_device(device: torch.device, freqs: Tensor, res: dict[str, Any]) -> tuple[TCM, Callable[[], Any]]:
    """The model for ``device`` and a context to run it in; on CUDA, audit the library first.

    If some library call creates CPU tensors on the way, the device model is run inside
    ``torch.device(device)`` (factory functions then allocate on the GPU); this is recorded.
    """
    if device.type != "cuda":
        return TCM(), contextlib.nullcontext
    audit_model = TCM()
    res["device_audit"] = device_audit(audit_model, audit_model.default_parameters().tensors(), freqs, device)
    workaround = not all(a["ok"] for a in res["device_audit"] if a["required"])
    res["config"]["default_device_workaround"] = workaround
    if not workaround:
        return TCM(), contextlib.nullcontext
    ctx = lambda: torch.device(device)  # noqa: E731
    with ctx():
        model_dev = TCM()
        model_dev._default_start()  # cached start, created on the device inside the context
    return model_dev, ctx


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False.")
    env = environment(args.threads, str(device), **provenance())
    warnings.simplefilter("ignore")  # non-converged draws are recorded, not warned about
    model = TCM()  # CPU: screening, the FD baseline, component timings, reference spectra
    freqs = torch.arange(1, args.n_freqs + 1, dtype=DTYPE)
    thetas = draw_thetas(model, max(args.n_draws, args.batch), args.seed)
    res: dict[str, Any] = {"config": {**vars(args), "fd_step": FD_STEP, "fp_tol": FP_TOL}, "environment": env}
    model_dev, ctx = setup_device(device, freqs, res)

    t0 = time.perf_counter()
    kept, res["draws"] = screen_draws(model, thetas[: args.n_draws], args.seed)
    default = model.default_parameters().tensors()
    for _ in range(3):  # warm-up of both paths
        with ctx():
            model_dev.csd({k: v.to(device) for k, v in default.items()}, freqs.to(device))
        baseline_csd(model, default, freqs, model.initial_state())  # from tcm_py's template
    per = run_per_call((model, model_dev), thetas, kept, freqs, args, device, ctx)
    t = per["times"]
    res["per_call"] = {
        "thalia_eager_csd": stats_ms(t["eager"]),
        "thalia_eager_csd_consecutive": stats_ms(t["eager_consecutive"]),
        "baseline_fd_csd": stats_ms(t["baseline"]),
        "baseline_f_plus_fd_jacobian": stats_ms(t["fd_jac"]),
        "thalia_f_plus_exact_jacobian": stats_ms(t["exact_jac"]),
        "flow_model": stats_ms(t["flow"]),
        "flow_cached_coupling": stats_ms(t["flow_c"]),
        "baseline_newton_iterations_median": per["baseline_iterations_median"],
        "baseline_rejected (|f| >= 1e-2)": per["baseline_not_converged"],
        "baseline_accepted_above_tol_1e-6": per["baseline_accepted_above_tol"],
        "baseline_start": "the default parameters' fixed point (full state), as thalia's solver",
        "note": "baseline and component timings always on the CPU; thalia eager on --device",
    }
    res["agreement"] = per["agreement"]
    env["loadavg_after_per_call"] = load_average()
    res["batch"] = run_batch(model_dev, thetas[: args.batch], freqs, per["eager_out"], args, device, ctx)
    eager_ms = res["per_call"]["thalia_eager_csd"].get("median_ms")
    base_ms = res["per_call"]["baseline_fd_csd"].get("median_ms")
    res["speedup_eager_vs_baseline"] = base_ms / eager_ms if eager_ms and base_ms else None
    res["tcm_py_reference"] = {
        **TCM_PY_REFERENCE,
        "speedup_eager_vs_tcm_py_idle_0.11s": 110.0 / eager_ms if eager_ms else None,
    }
    res["targets"] = {
        "eager_under_3ms": bool(eager_ms is not None and eager_ms < TARGET_EAGER_MS),
        "batch_1000_under_1s": bool(res["batch"]["projected_s_per_1000_sets"] < TARGET_BATCH_1000_S),
        "batch_note": "time per 1000 sets projected linearly when --batch != 1000",
    }
    env["loadavg_end"] = load_average()
    env["wall_s"] = time.perf_counter() - t0
    print_table(res)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(res, handle, indent=2, default=str)
        print(f"\nresults written to {args.json}")
    return res


if __name__ == "__main__":
    main()

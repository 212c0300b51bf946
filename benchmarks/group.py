"""Benchmark: a group fit in this process (serial) against the same fit on a dask LocalCluster.

    python benchmarks/group.py --subjects 20 --workers 2 --worker-cpu --json out/bench/group.json

The subjects are CMC spectra (one source, 45 frequencies 4..48 Hz) at θ = prior mean + 0.5·prior
SD·z (seeded), each fitted to convergence by ``fit_group(..., model="cmc")``. Timed by
``time.perf_counter``:

1. **serial**: ``executor=None``, this process, ``--threads`` torch threads, after one untimed warm-up
   fit (so the first fit's one-off costs are not counted against it);
2. **cluster**: ``dask_executor(n_workers=W)`` (W processes, one thread each): the cluster start, the
   first group fit (cold workers: importing thalia and the first fit's one-off costs in every worker)
   and a second, identical group fit (warm workers).

Speed-ups are serial wall time over the cluster's (cold, warm, and start + cold); the median time of
one fit inside its process (``Posterior.seconds``) separates slower fits from the executor's overhead.
The posteriors of the two paths are compared (largest |ΔF| and largest |Δmean|).

3. **worker CPU** (``--worker-cpu``): CPU time of one fit (``time.thread_time``, median of 5 fits after
   a warm-up) in a one-worker cluster started by ``dask_executor`` and in a plain ``LocalCluster`` with
   dask's default worker environment (which adds ``MALLOC_TRIM_THRESHOLD_=65536``). CPU time, unlike
   wall time, hardly depends on what else the machine runs.

On a machine shared with other work the load averages at the start and end say how much of the CPUs
the run had.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import environment, load_average  # noqa: E402

from thalia.inference import dask_executor, fit_group, fit_spectrum  # noqa: E402
from thalia.mass import CMC  # noqa: E402

FREQS = torch.arange(4.0, 49.0, dtype=torch.float64)
#: Spread of the true parameters around the prior mean, in prior standard deviations.
DRAW_SPREAD = 0.5


def spectra(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model = CMC()
    forward = model.spectrum_function(FREQS)
    gen = torch.Generator().manual_seed(seed)
    mean, sd = model.space.prior_mean_vector(), model.space.prior_var_vector().sqrt()
    draws = [mean + DRAW_SPREAD * sd * torch.randn(sd.shape, generator=gen, dtype=sd.dtype) for _ in range(n)]
    return [(FREQS, forward(theta)) for theta in draws]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def median_fit_s(group) -> float:
    """Median wall time of one fit inside its process (Posterior.seconds), without the executor's overhead."""
    return float(np.median([p.seconds for p in group.posteriors]))


def cpu_per_fit(data: list) -> float:
    """Median CPU seconds of one fit in the calling thread, after a warm-up fit (runs on a worker)."""
    fit_spectrum(data[0], "cmc")
    seconds = []
    for spectrum in data[1:]:
        start = time.thread_time()
        fit_spectrum(spectrum, "cmc")
        seconds.append(time.thread_time() - start)
    return float(np.median(seconds))


def worker_cpu(data: list, scratch: str) -> dict[str, float]:
    from distributed import Client, LocalCluster

    options = {"processes": True, "dashboard_address": None, "silence_logs": logging.ERROR}
    with dask_executor(n_workers=1, local_directory=scratch) as executor:
        ours = executor.submit(cpu_per_fit, data).result()
    with LocalCluster(n_workers=1, threads_per_worker=1, local_directory=scratch, **options) as cluster:
        with Client(cluster) as client:
            default = client.submit(cpu_per_fit, data).result()
    return {"dask_executor_s": ours, "dask_default_environment_s": default, "this_process_s": cpu_per_fit(data)}


def differences(a, b) -> dict[str, float]:
    pairs = list(zip(a.posteriors, b.posteriors, strict=True))
    return {
        "max_abs_dF": max(abs(p.F - q.F) for p, q in pairs),
        "max_abs_dmean": max(float((p.mean - q.mean).abs().max()) for p, q in pairs),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the serial run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker-cpu", action="store_true", help="also time one fit's CPU in a worker")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.workers < 1 or args.threads < 1:
        parser.error("--subjects, --workers and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    env = environment(args.threads, workers=args.workers)
    data = spectra(args.subjects, args.seed)
    fit_spectrum(data[0], "cmc")  # warm-up
    serial, serial_s = timed(fit_group, data, model="cmc", progress=False)
    print(f"serial: {args.subjects} subjects in {serial_s:.2f} s ({serial_s / args.subjects:.2f} s per subject)")
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        with dask_executor(n_workers=args.workers, local_directory=scratch) as executor:
            start_s = time.perf_counter() - start
            cold, cold_s = timed(fit_group, data, model="cmc", executor=executor, progress=False)
            warm, warm_s = timed(fit_group, data, model="cmc", executor=executor, progress=False)
    cluster = {"start_s": start_s, "cold_s": cold_s, "warm_s": warm_s, "median_fit_s_warm": median_fit_s(warm)}
    speedup = {"cold": serial_s / cold_s, "warm": serial_s / warm_s, "start_and_cold": serial_s / (start_s + cold_s)}
    print(
        f"cluster ({args.workers} workers): start {start_s:.2f} s, cold fit {cold_s:.2f} s, warm fit {warm_s:.2f} s; "
        f"median time of one fit: serial {median_fit_s(serial):.2f} s, warm workers {median_fit_s(warm):.2f} s"
    )
    print("speed-up: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedup.items()))
    agreement = differences(serial, cold) | {"converged": sum(p.converged for p in serial.posteriors)}
    print(f"agreement serial vs cluster: {agreement}; failed on the cluster: {len(cold.failed) + len(warm.failed)}")
    if args.worker_cpu:
        with tempfile.TemporaryDirectory() as scratch:
            cpu = worker_cpu(data[:6], scratch)
        print("CPU seconds per fit: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
    out = {
        "subjects": args.subjects,
        "workers": args.workers,
        "serial_s": serial_s,
        "serial_median_fit_s": median_fit_s(serial),
        "cluster": cluster,
        "speedup": speedup,
        "agreement": agreement,
        "failed": {**cold.failed, **warm.failed},
        "cpu_per_fit": cpu if args.worker_cpu else None,
        "environment": env,
        "loadavg_end": load_average(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

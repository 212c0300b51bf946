"""Benchmark: the Potjans & Diesmann (2014) cortical microcircuit (thalia.spiking.microcircuit).

Builds the model at ``--scale`` (1.0: 77,169 neurons, ~3e8 synapses), runs ``--warmup`` seconds
(the transient of the initial potentials, not timed as the run) and then ``--duration`` seconds of
biological time at dt = 0.1 ms, and reports the population rates, irregularity and synchrony beside
the reference rates, the real-time factor (wall seconds per biological second of the measured run),
the build time (network, flattening, engine arrays), the memory per synapse and the peak memory.
Run from the repository root::

    python benchmarks/microcircuit.py --scale 0.1 --duration 1 --device cpu --json out/pd_0.1.json
    python benchmarks/microcircuit.py --scale 0.1 --k-scale 0.5 --duration 1 --json out/pd_0.1_k0.5.json
    python benchmarks/microcircuit.py --scale 1 --duration 0.2 --warmup 0.1 --json out/pd_1.json
    python benchmarks/microcircuit.py --scale 1 --duration 1 --device cuda --dtype float32 --json out/pd_gpu.json

Published real-time factors at full scale: NEST GPU on one RTX 4090 0.4; GeNN on one V100 ≈ 2; NEST
on two 128-core EPYC nodes 0.59; SpiNNaker 1.0; an FPGA cluster 0.05.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

PUBLISHED_RTF = {"NEST GPU, RTX 4090": 0.4, "GeNN, V100": 2.0, "NEST, 2x128-core EPYC": 0.59, "SpiNNaker": 1.0,
                 "FPGA cluster": 0.05}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="neuron-number scale")
    parser.add_argument("--k-scale", type=float, default=1.0, help="in-degree scale (1: in-degrees kept)")
    parser.add_argument("--duration", type=float, default=1.0, help="measured biological seconds")
    parser.add_argument("--warmup", type=float, default=0.2, help="biological seconds run before the measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch", "graph"])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"], help="float32: torch only")
    parser.add_argument("--external", default="poisson", choices=["poisson", "dc"], help="external input")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the numba loop uses one)")
    parser.add_argument("--seed", type=int, default=1, help="connectivity seed (the run uses seed + 1)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("scale", "k_scale"):
        if not 0 < getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(args, name)}")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.backend == "numba" and (args.device != "cpu" or args.dtype != "float64"):
        parser.error("--backend numba runs on the CPU in float64 only")
    return args


def engine_bytes_per_synapse(simulator) -> float:
    """Bytes per synapse of the run-time synapse arrays: the compiled network's plus the engine's own."""
    compiled, engine = simulator.compiled, simulator._engine
    n = max(len(compiled.syn_post), 1)
    if simulator.backend == "numba":
        own = engine.arrays["syn_off"].nbytes + (0 if engine.arrays["syn_w"] is compiled.syn_weight else 8 * n)
    else:
        own = sum(t.element_size() * t.numel() for t in (engine.weight, engine.target, engine.delay))
    return (compiled.synapse_bytes + own) / n


def peak_memory_gb(device: str) -> dict[str, float]:
    out = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.startswith("cuda"):
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from thalia.spiking import Simulator
    from thalia.spiking import microcircuit as mc

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    backend = args.backend
    if backend == "auto":
        on_cpu = torch.device(args.device).type == "cpu"
        backend = "numba" if on_cpu and args.dtype == "float64" else "torch"
    compile_s = 0.0
    if backend == "numba":
        from thalia.spiking import _numba_engine

        compile_s = _numba_engine.compile_kernel()["seconds"]
    start = time.perf_counter()
    net = mc.potjans_diesmann(args.scale, seed=args.seed, k_scale=args.k_scale, external=args.external)
    network_s = time.perf_counter() - start
    n_neurons = net.n_neurons
    simulator = Simulator(net, dt_ms=0.1, seed=args.seed + 1, backend=backend, device=args.device, dtype=dtype)
    build_s = time.perf_counter() - start
    del net  # the simulator keeps what it needs
    n_synapses = int(len(simulator.compiled.syn_post))
    warm = simulator.run(int(round(args.warmup * 1e4))) if args.warmup > 0 else None
    result = simulator.run(int(round(args.duration * 1e4)))
    stats = mc.spike_statistics(result)
    return {
        "benchmark": "microcircuit",
        "scale": args.scale,
        "k_scale": args.k_scale,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "device": args.device,
        "backend": backend,
        "dtype": args.dtype,
        "external": args.external,
        "n_neurons": n_neurons,
        "n_synapses": n_synapses,
        "build_s": build_s,
        "network_s": network_s,
        "compile_s": compile_s,
        "wall_s": result.wall_s,
        "warmup_wall_s": None if warm is None else warm.wall_s,
        "rtf": result.wall_s / args.duration,
        "spikes": int(len(result.spike_ids)),
        "bytes_per_synapse": engine_bytes_per_synapse(simulator),
        "engine_stats": getattr(simulator._engine, "stats", None),
        **peak_memory_gb(args.device),
        "rates_hz": stats["rates_hz"],
        "reference_rates_hz": mc.REFERENCE_RATES_HZ,
        "cv_isi": stats["cv_isi"],
        "synchrony": stats["synchrony"],
        "published_rtf_full_scale": PUBLISHED_RTF,
    }


def print_table(res: dict[str, Any]) -> None:
    print(
        f"Potjans-Diesmann microcircuit scale={res['scale']} k_scale={res['k_scale']} ({res['n_neurons']} neurons, "
        f"{res['n_synapses']:.3g} synapses) {res['backend']} on {res['device']} ({res['dtype']})"
    )
    print(
        f"  build {res['build_s']:.1f} s (network {res['network_s']:.1f} s)   run {res['wall_s']:.2f} s for "
        f"{res['duration_s']} s   RTF {res['rtf']:.2f}   {res['bytes_per_synapse']:.1f} B/synapse   "
        f"peak RSS {res['peak_rss_gb']:.2f} GB"
    )
    if res["engine_stats"] is not None:
        print(f"  graph engine: {res['engine_stats']}")
    print(f"  {'population':<8}{'rate Hz':>9}{'ref Hz':>8}{'CV ISI':>8}{'synchrony':>11}")
    for pop, rate in res["rates_hz"].items():
        print(
            f"  {pop:<8}{rate:>9.3f}{res['reference_rates_hz'][pop]:>8.3f}{res['cv_isi'][pop]:>8.2f}"
            f"{res['synchrony'][pop]:>11.2f}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import environment, load_average

    env = environment(args.threads, args.device)
    res = run(args)
    res["environment"] = {**env, "loadavg_end": load_average()}
    res["config"] = vars(args)
    print_table(res)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, default=lambda x: float(np.asarray(x))))
    return res


if __name__ == "__main__":
    main()

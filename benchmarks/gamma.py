"""Dual gamma of the default thalamo-cortical circuit, with its two no-feedback controls.

    python benchmarks/gamma.py --duration 3 --json out/bench/gamma.json

Runs the ``"thalamocortical"`` circuit intact, without L6a → TRN (``no_l6a``) and without L6b → relay
(``no_l6b``), and writes per run the low-gamma (25–35 Hz) and high-gamma (60–80 Hz) peak frequency and
prominence (log10 units over the aperiodic fit; null when there is no peak), every population's mean
rate and the wall time (:func:`thalia.spiking.gamma.measure`). Also times the seed's network at
dt = 1 ms per simulated second (the original: 4–10 s of CPU per simulated second).

    python benchmarks/gamma.py --realtime --json out/bench/gamma_realtime.json

scans instead the size of the default circuit (every population × 1, 2, 4, … up to ``--max-scale``)
at dt 0.1 ms and 1 ms and reports, per size, neurons, synapses and wall seconds per simulated second,
and the largest circuit that runs at real time (wall ≤ simulated time) at each dt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import environment  # noqa: E402

from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig  # noqa: E402
from thalia.spiking.gamma import LOOPS, build, measure  # noqa: E402


def seed_network_speed(seconds: float) -> dict:
    """The seed's network (128 sensory → 128 relay → cortex 256, dt 1 ms): wall s per simulated s."""
    brain = BrainBuilder.preset("thalamocortical", GlobalConfig(dt_ms=1.0)).build()
    brain.forward(None, n_timesteps=50)  # warm-up (compiled kernel, caches)
    n = int(seconds * 1000)
    start = time.perf_counter()
    brain.forward(None, n_timesteps=n)
    one_call = (time.perf_counter() - start) / seconds
    start = time.perf_counter()
    for _ in range(n // 10):
        brain.forward(None, n_timesteps=10)
    ten_step_calls = (time.perf_counter() - start) / seconds
    neurons = brain.network.n_neurons
    synapses = sum(len(p.pre_idx) for p in brain.network.projections)
    return {"neurons": neurons, "synapses": synapses, "wall_s_per_sim_s": one_call,
            "wall_s_per_sim_s_in_10_step_calls": ten_step_calls}  # fmt: skip


def realtime_scan(max_scale: int, seconds: float, dts=(0.1, 1.0)) -> dict:
    """Wall s per simulated s of the intact default circuit scaled ×1, ×2, ×4, … (up to ``max_scale``,
    stopping at a dt once a size runs slower than real time); the largest real-time size per dt."""
    out = {}
    for dt in dts:
        sizes, largest = [], None
        scale = 1
        while scale <= max_scale:
            brain = build("intact", dt_ms=dt, seed=1, scale=scale)
            brain.run(100.0)  # warm-up: compiled kernel, caches, transients
            start = time.perf_counter()
            brain.run(seconds * 1000.0)
            ratio = (time.perf_counter() - start) / seconds
            synapses = sum(len(p.pre_idx) for p in brain.network.projections)
            row = {"scale": scale, "neurons": brain.network.n_neurons, "synapses": synapses, "wall_s_per_sim_s": ratio}
            sizes.append(row)
            print(f"dt {dt} ms  x{scale}: {row['neurons']} neurons, {synapses} synapses, {ratio:.2f} wall s/sim s")
            if ratio > 1.0:
                break
            largest = row
            scale *= 2
        out[f"dt_{dt}_ms"] = {"sizes": sizes, "largest_realtime": largest}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="simulated seconds after a 0.5 s warm-up")
    parser.add_argument("--dt", type=float, default=0.1, help="time step (ms)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--realtime", action="store_true", help="scan circuit sizes for real-time speed instead")
    parser.add_argument("--max-scale", type=int, default=64, help="largest size factor of the --realtime scan")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.dt <= 0:
        parser.error("--duration and --dt must be > 0")
    if args.max_scale < 1:
        parser.error("--max-scale must be >= 1")
    torch.set_num_threads(args.threads)
    if args.realtime:
        out = {"realtime": realtime_scan(args.max_scale, args.duration), "duration_s": args.duration,
               "environment": environment(args.threads)}  # fmt: skip
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2))
        return 0
    runs = {}
    for loops in LOOPS:
        r = measure(loops, duration_ms=args.duration * 1000.0, dt_ms=args.dt, seed=args.seed)
        r.pop("spectrum")
        runs[loops] = r
        peaks = {k: r[k] for k in r if k.endswith(("_hz", "_prominence")) and k != "rates_hz"}
        print(f"{loops:7s} wall {r['wall_s']:.2f} s  {peaks}")
    speed = seed_network_speed(2.0)
    print(f"seed network at dt 1 ms: {speed}")
    out = {
        "runs": runs,
        "seed_network": speed,
        "duration_s": args.duration,
        "dt_ms": args.dt,
        "environment": environment(args.threads),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

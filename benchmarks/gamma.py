"""Dual gamma of the default thalamo-cortical circuit, with its two no-feedback controls.

    python benchmarks/gamma.py --duration 3 --json out/bench/gamma.json

Runs the ``"thalamocortical"`` circuit intact, without L6a → TRN (``no_l6a``) and without L6b → relay
(``no_l6b``), and writes per run the low-gamma (25–35 Hz) and high-gamma (60–80 Hz) peak frequency and
prominence (log10 units over the aperiodic fit; null when there is no peak), every population's mean
rate and the wall time (:func:`thalia.spiking.gamma.measure`). Also times the seed's network at
dt = 1 ms per simulated second (the original: 4–10 s of CPU per simulated second).
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
from thalia.spiking.gamma import LOOPS, measure  # noqa: E402


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="simulated seconds after a 0.5 s warm-up")
    parser.add_argument("--dt", type=float, default=0.1, help="time step (ms)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.dt <= 0:
        parser.error("--duration and --dt must be > 0")
    torch.set_num_threads(args.threads)
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

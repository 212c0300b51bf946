"""Benchmark: the COBA network (Vogels & Abbott 2005; Brette et al. 2007 benchmark 1) in thalia, beside its peers.

The network of ``/work/shared/peers/coba`` (parameters only, rebuilt with thalia's own rules): N
conductance-based LIF neurons, 80 % excitatory; C 200 pF, g_L 10 nS (τ_m 20 ms), E_L −60, threshold
−50, reset −60 mV, refractory 5 ms, I_bias 200 pA (the peers' 20 mV background); AMPA 6 nS (τ 5 ms,
E 0 mV) from excitatory and GABA-A 67 nS (τ 10 ms, E −80 mV) from inhibitory neurons, one step of
delay (0.1 ms: a spike acts on the next step, as Brian2's undelayed synapses do); V(0) ~ N(−55, 5) mV.
Connectivity: ``Probability(0.02)`` between every pair of populations for N = 4000, otherwise
``FixedInDegree`` 64 excitatory + 16 inhibitory sources per neuron. The peers integrate with
forward Euler (Brian2) or RKF45 (NEST), thalia with exponential Euler, so rates agree only roughly
(Brian2: about 22 Hz at N = 4000).

Timings: ``build_s`` network construction and flattening, ``compile_s`` the numba kernel's
compilation or cache load (torch: a 10 ms warm-up run, after which the simulator goes back to its
initial state; the graph engine compiles and captures its step there), ``wall_s`` the step loop only
(median of ``--repeats`` runs, each from the initial state). Run from the repository root::

    python benchmarks/coba.py --n 4000 --duration 1 --backend numba --threads 1 --json out/coba_4k.json
    python benchmarks/coba.py --n 400000 --device cuda --backend graph --dtype float32 --json out/coba_400k_gpu.json
    python benchmarks/coba.py --n 40000 --duration 1 --backend numba --json out/coba_40k.json
    python benchmarks/coba.py --n 4000 --peers --brian2-python /path/to/brian2-venv/bin/python
    python benchmarks/coba.py --n 4000 --cold-compile      # numba compiles from scratch (empty cache)

``--peers`` runs the peer scripts in their own environments (``--brian2-python``, ``--nest-python``,
``--brainpy-python``, or the environment variables THALIA_BRIAN2_PYTHON, THALIA_NEST_PYTHON,
THALIA_BRAINPY_PYTHON; the plain-PyTorch peer runs with this interpreter) and reports the missing
ones as unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

PEER_DIR = Path(os.environ.get("THALIA_COBA_PEERS", "/work/shared/peers/coba"))
#: Brian2 cpp_standalone on this machine class, 1 s biological, one thread (peers' README).
BRIAN2_REFERENCE_S = {4000: (0.19, 0.28), 40000: (2.2, 2.3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="number of neurons")
    parser.add_argument("--duration", type=float, default=1.0, help="biological seconds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch", "graph"])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"], help="float32: torch/graph")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the numba loop uses one)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the step loop; medians reported")
    parser.add_argument("--seed", type=int, default=42, help="connectivity and initial-potential seed")
    parser.add_argument("--cold-compile", action="store_true", help="numba: compile into an empty cache")
    parser.add_argument("--peers", action="store_true", help="also run the peer scripts where installed")
    parser.add_argument("--peer-timeout", type=float, default=600.0, help="seconds per peer run")
    for peer in ("brian2", "nest", "brainpy"):
        parser.add_argument(f"--{peer}-python", default=os.environ.get(f"THALIA_{peer.upper()}_PYTHON"))
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.backend == "numba" and (args.device != "cpu" or args.dtype != "float64"):
        parser.error(
            f"--backend numba runs on the CPU in float64 only, got --device {args.device} --dtype {args.dtype}"
        )
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    return args


def build_network(n: int, seed: int):
    """The COBA network of ``n`` neurons (populations "E" and "I")."""
    from thalia.spiking import LIF, FixedInDegree, Network, Probability

    neuron = LIF(
        C_pF=200.0, g_leak_nS=10.0, E_leak_mV=-60.0, V_th_mV=-50.0, V_reset_mV=-60.0, t_ref_ms=5.0,
        I_bias_pA=200.0, tau_ms={"ampa": 5.0, "gaba_a": 10.0}, E_rev_mV={"ampa": 0.0, "gaba_a": -80.0},
        V_init_mV=-55.0, V_init_sd_mV=5.0,
    )  # fmt: skip
    n_exc = int(round(0.8 * n))
    net = Network()
    net.add_population("E", n_exc, neuron)
    net.add_population("I", n - n_exc, neuron)
    for k, (pre, receptor, weight_nS, k_in) in enumerate((("E", "ampa", 6.0, 64), ("I", "gaba_a", 67.0, 16))):
        for j, post in enumerate(("E", "I")):
            rule = Probability(0.02) if n == 4000 else FixedInDegree(k_in)
            net.connect(pre, post, rule, weight_nS=weight_nS, receptor=receptor, delay_ms=0.1, rng=seed + 2 * k + j)
    return net


def warm_up(simulator, backend: str) -> dict[str, Any]:
    """Compile the numba kernel (or load it from the cache); torch: run 10 ms (the graph engine compiles
    and captures its step), then go back to the initial state."""
    if backend == "numba":
        from thalia.spiking import _numba_engine

        info = _numba_engine.compile_kernel()
        return {"compile_s": info["seconds"], "compile_cache_hit": info["cache_hit"]}
    state = simulator.state_dict()
    start = time.perf_counter()
    simulator.run(100)
    out = {"compile_s": time.perf_counter() - start, "compile_cache_hit": None}
    simulator.load_state_dict(state)
    return out


def bench_thalia(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up, then ``--repeats`` timed runs of one simulator, each from the initial state."""
    import torch

    from thalia.spiking import Simulator

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    net = build_network(args.n, args.seed)
    backend = args.backend
    if backend == "auto":
        backend = "numba" if torch.device(args.device).type == "cpu" else "torch"
    sim = Simulator(
        net, dt_ms=0.1, seed=args.seed, backend=backend, device=args.device, dtype=getattr(torch, args.dtype)
    )
    build_s = time.perf_counter() - start
    out: dict[str, Any] = {"build_s": build_s, "n_synapses": int(len(sim.compiled.syn_post)), "backend": backend}
    out["dtype"] = args.dtype
    out.update(warm_up(sim, backend))
    initial, runs = sim.state_dict(), []
    for _ in range(args.repeats):
        sim.load_state_dict(initial)
        result = sim.run(int(round(args.duration * 1e4)))
        runs.append({"wall_s": result.wall_s, "rate_hz": result.rate_hz(), "spikes": len(result.spike_ids)})
    out["wall_s_all"] = [r["wall_s"] for r in runs]
    out["wall_s"] = statistics.median(out["wall_s_all"])
    out["rate_hz"] = statistics.median(r["rate_hz"] for r in runs)
    out["rate_hz_E"], out["rate_hz_I"] = result.rate_hz("E"), result.rate_hz("I")
    out["spikes"] = runs[-1]["spikes"]
    out["engine_stats"] = getattr(sim._engine, "stats", None)  # graph: chunks replayed, overflows, captures
    if torch.device(args.device).type == "cuda":
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated(args.device) / 2**30
    return out


def _peer_runs(args: argparse.Namespace) -> list[tuple[str, str | None, list[str]]]:
    common = ["--n", str(args.n), "--t", str(args.duration), "--threads", str(args.threads), "--seed", str(args.seed)]
    torch_device = ["--device", args.device]
    return [
        ("brian2-cpp_standalone", args.brian2_python, ["coba_brian2.py", "--target", "cpp_standalone", *common]),
        ("brian2-cython", args.brian2_python, ["coba_brian2.py", "--target", "cython", *common]),
        ("torch-event", sys.executable, ["coba_torch.py", "--mode", "event", *common, *torch_device]),
        ("nest", args.nest_python, ["coba_nest.py", *common]),
        ("brainpy", args.brainpy_python, ["coba_brainpy.py", *common]),
    ]


def run_peer(python: str | None, script_args: list[str], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """One run of a peer script; its ``RESULT {json}`` line, or why there is none."""
    if not python or not Path(python).exists():
        return {"available": False, "reason": "no environment (give --<peer>-python)"}
    if not (PEER_DIR / script_args[0]).exists():
        return {"available": False, "reason": f"{PEER_DIR / script_args[0]} not found"}
    try:
        done = subprocess.run(
            [python, *script_args], cwd=PEER_DIR, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"available": True, "error": f"timed out after {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"available": True, **json.loads(line[len("RESULT ") :])}
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"available": True, "error": f"exit {done.returncode}: " + " | ".join(tail)}


def bench_peers(args: argparse.Namespace) -> dict[str, Any]:
    """Median ``run_s`` of each peer over ``--repeats`` runs (Brian2 standalone compiles on its first)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "ANCHOR_TMP": tempfile.mkdtemp(prefix="coba_peers_")}
    out = {}
    for name, python, script_args in _peer_runs(args):
        runs = [run_peer(python, script_args, args.peer_timeout, env) for _ in range(max(1, args.repeats))]
        ok = [r for r in runs if "run_s" in r]
        if not ok:
            out[name] = runs[0]
            continue
        out[name] = {
            **ok[-1],
            "run_s_all": [r["run_s"] for r in ok],
            "run_s": statistics.median(r["run_s"] for r in ok),
        }
        out[name]["wall_s"] = out[name]["run_s"]
    return out


def print_table(res: dict[str, Any]) -> None:
    t = res["thalia"]
    print(
        f"COBA N={res['n']} duration={res['duration_s']} s device={res['device']} threads={res['threads']} "
        f"dtype={t['dtype']} engine={t['engine_stats']}"
    )
    print(f"  {'simulator':<24}{'wall_s':>10}{'rate_hz':>10}{'compile_s':>11}{'build_s':>9}")
    print(
        f"  {'thalia-' + t['backend']:<24}{t['wall_s']:>10.3f}{t['rate_hz']:>10.2f}"
        f"{t['compile_s']:>11.2f}{t['build_s']:>9.2f}"
    )
    for name, peer in res.get("peers", {}).items():
        if "run_s" in peer:
            print(
                f"  {name:<24}{peer['run_s']:>10.3f}{peer.get('rate_hz', float('nan')):>10.2f}"
                f"{peer.get('compile_s', float('nan')):>11.2f}{peer.get('build_s', float('nan')):>9.2f}"
            )
        else:
            print(f"  {name:<24}  {peer.get('reason') or peer.get('error')}")
    if res["n"] in BRIAN2_REFERENCE_S:
        lo, hi = BRIAN2_REFERENCE_S[res["n"]]
        print(f"  (Brian2 cpp_standalone recorded on this machine class: {lo}-{hi} s)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.cold_compile:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="coba_numba_cache_")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import environment, load_average

    res: dict[str, Any] = {
        "benchmark": "coba",
        "n": args.n,
        "duration_s": args.duration,
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "config": vars(args),
        "environment": environment(args.threads, args.device),
    }
    res["thalia"] = bench_thalia(args)
    for key in ("wall_s", "build_s", "compile_s", "rate_hz", "backend"):
        res[key] = res["thalia"][key]
    if args.n in BRIAN2_REFERENCE_S:
        res["brian2_cpp_standalone_reference_s"] = BRIAN2_REFERENCE_S[args.n]
    if args.peers:
        res["peers"] = bench_peers(args)
    res["environment"]["loadavg_end"] = load_average()
    print_table(res)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()

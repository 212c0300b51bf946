"""The spiking engine: one step loop over a compiled :class:`~thalia.spiking.network.Network`.

Step semantics (every backend implements exactly these, in this order, for step t = 0, 1, …):

1. **Arrivals**: g[r, i] += buffer[t mod S, r, i]; that slot is cleared (S = longest delay + 1).
2. **Membrane** (neurons with refractory counter 0): with the conductances at the start of the step,
   g_tot = g_L + Σ_r g_r·B_r(V) + g_w + g_T·[V > V_h]·h and
   V∞ = (g_L·E_L + Σ_r g_r·B_r(V)·E_r + g_w·E_w + g_T·[V > V_h]·h·E_T + I_bias)/g_tot,
   V ← V∞ + (V − V∞)·exp(−dt·g_tot/C) + noise_scale·ξ (ξ standard normal, drawn for every neuron every
   step when any neuron has noise). Refractory neurons keep V and count down by one.
3. **Decay**: g ← g·exp(−dt/τ_r), g_w ← g_w·exp(−dt/τ_w); the T-current gate (all neurons, on V at
   the start of the step) h ← h·exp(−dt/τ_h⁻) if V > V_h, else h ← 1 − (1 − h)·exp(−dt/τ_h⁺).
4. **Spikes**: non-refractory neurons with V ≥ V_th spike: V ← V_reset, counter ← round(t_ref/dt),
   g_w += b. Spike sources (``Network.add_spike_source``) spike at their given steps
   (round(t/dt)) and, when Poisson, where a uniform draw is below 1 − exp(−rate·dt).
5. **Propagation**: each synapse of a spiking source adds its weight to buffer[(t + d) mod S, r, post],
   d its delay in steps (≥ 1), so it arrives exactly d steps later (step 1 of step t + d).
6. **Plasticity** (plastic projections only, :mod:`thalia.spiking.plasticity`): traces decay by one
   step, weights change with the traces *before* this step's spikes are added, then the traces take
   the spikes (so a pre/post pair Δt apart sees exactly e^{−Δt/τ}); weights are clipped.

Accuracy and conventions: the membrane step is exact for the conductances held at their start-of-step
values (Brian2's ``exponential_euler`` on the same equations gives the same traces to 1e-13 mV); against
the exact ODE a decaying synaptic conductance delivers 1 + dt/(2τ) times its charge, i.e. 0.05 mV on a
5 mV AMPA PSP at dt = 0.1 ms, first order in dt (``tests/reference/test_spiking_neurons.py``). The
refractory hold lasts round(t_ref/dt) steps after the spike step (Brian2's ``refractory=t_ref``
holds one step less); a delay of d steps corresponds to Brian2's delay (d − 1)·dt.

Randomness: initial potentials, noise and Poisson draws come from one ``torch.Generator`` seeded with
``seed`` on the CPU (noise, then Poisson draws, in chunks of steps), so the numba and torch backends
see the same numbers and give the same spikes for every feature.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from thalia._validation import check_option
from thalia.spiking.network import Compiled, Network, compile_network
from thalia.spiking.neurons import MG_BLOCK_MM, MG_BLOCK_SLOPE_PER_MV, RECEPTORS

BACKENDS = ("auto", "torch", "numba")
NOISE_CHUNK = 1000
NMDA = RECEPTORS.index("nmda")
AMPA, GABA_A = RECEPTORS.index("ampa"), RECEPTORS.index("gaba_a")


@dataclass
class SimulationResult:
    """Spikes and recordings of one run.

    Attributes
    ----------
    dt_ms, duration_ms : float
    spike_steps, spike_ids : ndarray
        Step index and global neuron index of every spike, in time order.
    populations : dict name -> slice of global indices
    voltage : dict name -> (n_steps, n_recorded) ndarray of V (mV) of the recorded neurons
    weights : dict projection name -> final weights (nS) in the projection's synapse order
    wall_s : float
        Time of the step loop.
    backend : str
    """

    dt_ms: float
    duration_ms: float
    spike_steps: np.ndarray
    spike_ids: np.ndarray
    populations: dict[str, slice]
    voltage: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0
    backend: str = ""
    currents: dict[str, np.ndarray] = field(default_factory=dict)

    def lfp(
        self, populations: Sequence[str] | None = None, *, delay_ms: float = 6.0, alpha: float = 1.65
    ) -> np.ndarray:
        """LFP proxy (n_steps,) of Mazzoni et al. (2015): Σ over the recorded (pyramidal) populations of
        I_AMPA(t − 6 ms) − 1.65·I_GABA(t), from ``record_currents`` (pA; sign convention of inward
        currents as positive drive). The first ``delay_ms`` take the AMPA current at t = 0."""
        names = list(self.currents) if populations is None else list(populations)
        missing = [name for name in names if name not in self.currents]
        if missing or not names:
            raise ValueError(
                f"Invalid value for 'populations': no recorded currents for {missing or names}; pass "
                "record_currents=[...] to simulate."
            )
        ampa = sum(self.currents[name][:, 0] for name in names)
        gaba = sum(self.currents[name][:, 1] for name in names)
        shift = int(round(delay_ms / self.dt_ms))
        delayed = np.concatenate([np.full(shift, ampa[0]), ampa[: len(ampa) - shift]]) if shift else ampa
        return delayed - alpha * gaba

    def spikes(self, population: str) -> tuple[np.ndarray, np.ndarray]:
        """(times in ms, local neuron indices) of one population's spikes."""
        sl = self._slice(population)
        keep = (self.spike_ids >= sl.start) & (self.spike_ids < sl.stop)
        return self.spike_steps[keep] * self.dt_ms, self.spike_ids[keep] - sl.start

    def rate_hz(self, population: str | None = None) -> float:
        """Mean firing rate (Hz) of a population (or of all neurons)."""
        if population is None:
            n = max(s.stop for s in self.populations.values())
            count = len(self.spike_ids)
        else:
            sl = self._slice(population)
            n, count = sl.stop - sl.start, len(self.spikes(population)[0])
        return count / n / (self.duration_ms / 1000.0)

    def population_rate(self, population: str, bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres ms, rate Hz) of a population."""
        times, _ = self.spikes(population)
        sl = self._slice(population)
        edges = np.arange(0.0, self.duration_ms + bin_ms / 2, bin_ms)
        counts, _ = np.histogram(times, edges)
        return (edges[:-1] + edges[1:]) / 2, counts / (sl.stop - sl.start) / (bin_ms / 1000.0)

    def _slice(self, population: str) -> slice:
        if population not in self.populations:
            raise ValueError(f"Unknown population {population!r}; known: {list(self.populations)}.")
        return self.populations[population]

    def plot_raster(self, ax=None, max_neurons: int = 500):
        """Raster of every population (at most ``max_neurons`` each). Returns the Figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4)) if ax is None else (ax.figure, ax)
        base = 0
        for name, sl in self.populations.items():
            times, ids = self.spikes(name)
            keep = ids < max_neurons
            ax.plot(times[keep], ids[keep] + base, ".", ms=1, label=name)
            base += min(sl.stop - sl.start, max_neurons)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("neuron")
        ax.legend(fontsize="small", markerscale=8)
        return fig


class _Randomness:
    """Initial potentials and per-step noise from one CPU torch.Generator."""

    def __init__(self, compiled: Compiled, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))
        p = compiled.params
        n = len(p["C"])
        z = torch.randn(n, generator=self.generator, dtype=torch.float64).numpy()
        self.V0 = p["V0_mean"] + p["V0_sd"] * z
        self.noisy = bool((p["noise_scale"] > 0).any())
        self.n = n

        self.poisson_idx = np.nonzero(p["poisson_p"] > 0)[0]
        self.poisson_p = p["poisson_p"][self.poisson_idx]

    def noise(self, n_steps: int) -> np.ndarray | None:
        if not self.noisy:
            return None
        return torch.randn(n_steps, self.n, generator=self.generator, dtype=torch.float64).numpy()

    def poisson(self, n_steps: int) -> np.ndarray | None:
        """(n_steps, n_poisson) bool: which Poisson sources spike (drawn after the noise of the chunk)."""
        if not len(self.poisson_idx):
            return None
        u = torch.rand(n_steps, len(self.poisson_idx), generator=self.generator, dtype=torch.float64).numpy()
        return u < self.poisson_p


def _record_index(compiled: Compiled, record_v: dict[str, Sequence[int]] | None) -> dict[str, np.ndarray]:
    out = {}
    for name, idx in (record_v or {}).items():
        if name not in compiled.population_slices:
            raise ValueError(
                f"Invalid value for 'record_v': unknown population {name!r}; known {list(compiled.population_slices)}."
            )
        sl = compiled.population_slices[name]
        local = np.asarray(idx, dtype=np.int64)
        if local.ndim != 1 or (local < 0).any() or (local >= sl.stop - sl.start).any():
            raise ValueError(f"Invalid value for 'record_v'[{name!r}]: expected indices in [0, {sl.stop - sl.start}).")
        out[name] = local + sl.start
    return out


def simulate(
    network: Network,
    duration_ms: float,
    *,
    dt_ms: float = 0.1,
    seed: int = 0,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    record_v: dict[str, Sequence[int]] | None = None,
    record_currents: Sequence[str] = (),
    progress: bool = False,
) -> SimulationResult:
    """Run ``network`` for ``duration_ms`` at step ``dt_ms`` (see the module docstring).

    ``backend="auto"`` picks the compiled CPU loop (numba) on the CPU when numba is installed and
    torch otherwise; both backends run every feature (sources, T-currents, plasticity, current
    recordings) with the same spikes, and ``backend="numba"`` runs on the CPU only. ``record_v`` maps
    population names to local indices whose V is recorded; ``record_currents`` names populations
    whose summed AMPA and GABA-A currents (pA, at the start of each step's membrane update) are
    recorded for :meth:`SimulationResult.lfp`. ``progress=True`` shows a tqdm progress bar.
    """
    check_option("backend", backend, BACKENDS)
    if not np.isfinite(duration_ms) or duration_ms <= 0 or not np.isfinite(dt_ms) or dt_ms <= 0:
        raise ValueError(f"Invalid value for 'duration_ms'/'dt_ms': expected > 0, got {duration_ms}, {dt_ms}.")
    compiled = compile_network(network, dt_ms)
    n_steps = int(round(duration_ms / dt_ms))
    device = torch.device(device)
    randomness = _Randomness(compiled, seed)
    record = _record_index(compiled, record_v)
    currents = _current_slices(compiled, record_currents)
    if backend == "auto":
        backend = "numba" if device.type == "cpu" and _numba_available() else "torch"
    if backend == "numba":
        from thalia.spiking import _numba_engine

        run = _numba_engine.run
    else:
        run = _torch_run
    start = time.perf_counter()
    extra = {"currents": currents} if currents else {}
    with tqdm(total=n_steps, disable=not progress, unit="step", desc=f"simulate ({backend})") as bar:
        steps, ids, traces, *rest = run(compiled, n_steps, randomness, record, device, progress=bar.update, **extra)
        bar.update(n_steps - bar.n)
    wall = time.perf_counter() - start
    weights = compiled.projection_weights(rest[0] if rest else compiled.syn_weight)
    synaptic = dict(zip(currents, rest[1], strict=True)) if currents else {}
    voltage = {name: traces[:, k] for k, name in _trace_columns(record)}
    populations = dict(compiled.population_slices)
    return SimulationResult(dt_ms, n_steps * dt_ms, steps, ids, populations, voltage, weights, wall, backend, synaptic)


def _current_slices(compiled: Compiled, names: Sequence[str]) -> dict[str, slice]:
    unknown = [name for name in names if name not in compiled.population_slices]
    if unknown:
        raise ValueError(
            f"Invalid value for 'record_currents': unknown population(s) {unknown}; known "
            f"{list(compiled.population_slices)}."
        )
    return {name: compiled.population_slices[name] for name in names}


def _trace_columns(record: dict[str, np.ndarray]):
    start = 0
    for name, idx in record.items():
        yield slice(start, start + len(idx)), name
        start += len(idx)


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@torch.no_grad()
def _torch_run(
    compiled: Compiled,
    n_steps: int,
    randomness: _Randomness,
    record: dict,
    device: torch.device,
    currents: dict[str, slice] | None = None,
    progress: Callable[[int], object] | None = None,
):
    """The step loop in PyTorch (any device); ``progress(k)`` is called after every k steps done."""
    p = {k: torch.as_tensor(v, device=device) for k, v in compiled.params.items()}
    n = len(compiled.params["C"])
    R, S = len(RECEPTORS), compiled.n_slots
    V = torch.as_tensor(randomness.V0, device=device).clone()
    g = torch.zeros(R, n, dtype=torch.float64, device=device)
    g_w = torch.zeros(n, dtype=torch.float64, device=device)
    ref = torch.zeros(n, dtype=torch.int64, device=device)
    buffer = torch.zeros(S * R * n, dtype=torch.float64, device=device)
    indptr = torch.as_tensor(compiled.indptr, device=device)
    weight = torch.as_tensor(compiled.syn_weight, device=device)
    target = torch.as_tensor(compiled.syn_receptor * n + compiled.syn_post, device=device)
    delay = torch.as_tensor(compiled.syn_delay, device=device)
    watch = torch.as_tensor(np.concatenate([*record.values()]) if record else np.zeros(0, np.int64), device=device)
    traces = torch.zeros(n_steps, len(watch), dtype=torch.float64, device=device)
    steps_out, ids_out = [], []
    plastic = _Plasticity(compiled, device) if compiled.plastic is not None else None
    t_current = compiled.has_t_current
    synaptic = torch.zeros(len(currents or {}), n_steps, 2, dtype=torch.float64, device=device)
    h = p["h0"].clone()
    poisson_idx = torch.as_tensor(randomness.poisson_idx, device=device)
    schedule_steps, schedule_ids = compiled.schedule if compiled.schedule is not None else ((), ())
    schedule_steps = list(np.asarray(schedule_steps).tolist())
    cursor = 0
    noise = poisson = None
    gl_el = p["g_L"] * p["E_L"] + p["I_bias"]
    for t in range(n_steps):
        if t % NOISE_CHUNK == 0:
            if t and progress is not None:
                progress(NOISE_CHUNK)
            chunk = min(NOISE_CHUNK, n_steps - t)
            noise = _tensor(randomness.noise(chunk), device)
            poisson = _tensor(randomness.poisson(chunk), device)
        slot = (t % S) * R * n
        g += buffer[slot : slot + R * n].view(R, n)
        buffer[slot : slot + R * n] = 0.0
        active = ref == 0
        block = 1.0 / (1.0 + p["mg"] / MG_BLOCK_MM * torch.exp(-MG_BLOCK_SLOPE_PER_MV * V))
        g_eff = g.clone()
        g_eff[NMDA] = g[NMDA] * block
        if currents:
            ampa = g_eff[AMPA] * (p["E_rev"][AMPA] - V)
            gaba = g_eff[GABA_A] * (p["E_rev"][GABA_A] - V)
            for k, sl in enumerate(currents.values()):
                synaptic[k, t, 0], synaptic[k, t, 1] = ampa[sl].sum(), gaba[sl].sum()
        g_tot = p["g_L"] + g_eff.sum(0) + g_w
        drive = gl_el + (g_eff * p["E_rev"]).sum(0) + g_w * p["adapt_E"]
        if t_current:
            above = V > p["V_h"]
            g_t = p["g_T"] * h * above
            g_tot, drive = g_tot + g_t, drive + g_t * p["E_T"]
            h = torch.where(above, h * p["h_decay_minus"], 1.0 - (1.0 - h) * p["h_decay_plus"])
        v_inf = drive / g_tot
        v_new = v_inf + (V - v_inf) * torch.exp(-compiled.dt_ms * g_tot / p["C"])
        if noise is not None:
            v_new = v_new + p["noise_scale"] * noise[t % NOISE_CHUNK]
        V = torch.where(active, v_new, V)
        ref = torch.where(active, ref, ref - 1)
        g *= p["decay"]
        g_w *= p["adapt_decay"]
        spike = active & (V >= p["V_th"])
        if poisson is not None:
            spike[poisson_idx] |= poisson[t % NOISE_CHUNK]
        while cursor < len(schedule_steps) and schedule_steps[cursor] == t:
            spike[schedule_ids[cursor]] = True
            cursor += 1
        V = torch.where(spike, p["V_reset"], V)
        ref = torch.where(spike, p["ref_steps"], ref)
        g_w = g_w + spike * p["adapt_b"]
        if len(watch):
            traces[t] = V[watch]
        idx = torch.nonzero(spike).flatten()
        if len(idx):
            steps_out.append(torch.full_like(idx, t))
            ids_out.append(idx)
            syn = _outgoing(indptr, idx)
            if len(syn):
                flat = ((t + delay[syn]) % S) * R * n + target[syn]
                buffer.index_add_(0, flat, weight[syn])
        if plastic is not None:
            plastic.step(spike, weight)

    def cat(xs):
        return torch.cat(xs).cpu().numpy() if xs else np.zeros(0, np.int64)

    return cat(steps_out), cat(ids_out), traces.cpu().numpy(), weight.cpu().numpy(), synaptic.cpu().numpy()


def _tensor(array: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if array is None else torch.as_tensor(array, device=device)


def _outgoing(indptr: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Indices of all synapses of the given sources (CSR ranges, concatenated)."""
    starts = indptr[sources]
    counts = indptr[sources + 1] - starts
    total = int(counts.sum())
    offsets = torch.repeat_interleave(starts - torch.cumsum(counts, 0) + counts, counts)
    return offsets + torch.arange(total, device=indptr.device)


class _Plasticity:
    """Per-synapse traces and weight updates of the plastic synapses (step 6)."""

    def __init__(self, compiled: Compiled, device: torch.device) -> None:
        q = {k: torch.as_tensor(v, device=device) for k, v in compiled.plastic.items()}
        self.q, self.dt_ms = q, compiled.dt_ms
        self.stdp, self.bcm = q["rule"] == 1, q["rule"] == 2
        self.x = torch.zeros_like(q["a"])
        self.y = torch.zeros_like(q["a"])
        self.theta = torch.where(self.bcm, q["target"], torch.zeros_like(q["a"]))
        self.jump_x = torch.where(self.bcm, 1000.0 / q["tau_x"], torch.ones_like(q["a"]))
        self.jump_y = torch.where(self.bcm, 1000.0 / q["tau_y"], torch.ones_like(q["a"]))

    def step(self, spike: torch.Tensor, weight: torch.Tensor) -> None:
        q = self.q
        self.x *= q["decay_x"]
        self.y *= q["decay_y"]
        pre = spike[q["pre"]].to(self.x.dtype)
        post = spike[q["post"]].to(self.x.dtype)
        stdp = q["a"] * self.x * post - q["b"] * self.y * pre
        self.x += pre * self.jump_x
        self.y += post * self.jump_y
        relax = (self.y**2 / q["target"] - self.theta) * self.dt_ms / q["tau_theta"]
        self.theta += torch.where(self.bcm, relax, torch.zeros_like(relax))
        bcm = q["a"] * (self.dt_ms / 1000.0) * self.x * self.y * (self.y - self.theta)
        w = weight[q["index"]] + torch.where(self.stdp, stdp, bcm)
        weight[q["index"]] = torch.minimum(torch.maximum(w, q["w_min"]), q["w_max"])

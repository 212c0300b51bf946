"""The spiking engine: one step loop over a compiled :class:`~thalia.spiking.network.Network`.

:class:`Simulator` holds the state of one network and advances it by ``run(n_steps)``, any number of
times; :func:`simulate` is one run of a fresh simulator. Steps are counted from the simulator's
creation (t = 0, 1, …, across runs); every backend implements exactly these, in this order:

1. **Arrivals**: g[r, i] += buffer[t mod S, r, i]; that slot is cleared (S = longest delay + 1). Neurons
   with a Poisson drive (``Network.add_poisson_drive``) then get g[r, i] += k·w, k the inverse Poisson
   CDF of a counter-based uniform (SplitMix64 of the run's ``drive_key`` and t·N + i + 1).
2. **Membrane** (neurons with refractory counter 0): with the conductances ḡ_r of the step,
   g_tot = g_L + Σ_r ḡ_r·B_r(V) + ḡ_w + g_T·[V > V_h]·h and
   V∞ = (g_L·E_L + Σ_r ḡ_r·B_r(V)·E_r + ḡ_w·E_w + g_T·[V > V_h]·h·E_T + I_bias)/g_tot,
   V ← V∞ + (V − V∞)·exp(−dt·g_tot/C) + noise_scale·ξ (ξ standard normal, drawn for every neuron every
   step when any neuron has noise). Refractory neurons keep V and count down by one. The integrator
   sets ḡ: ``"exponential_euler"`` (default) takes the conductances at the start of the step,
   ḡ = g; ``"averaged"`` takes their exact mean over the step, ḡ = κ·g with κ = τ/dt·(1 − e^{−dt/τ})
   (per receptor, and for adaptation with τ_w). B(V), h and the driving forces stay at the start of
   the step in both. Current-based neurons (``LIF(synapse="current")``) hold currents I_r in g: they
   leave g_tot, enter the numerator as s_r·κ_r·I_r (s_r = ±1, stored in E_rev) with κ_r the exact
   factor of ``network.exact_current_factor`` under both integrators, and have no Mg²⁺ block.
3. **Decay**: g ← g·exp(−dt/τ_r), g_w ← g_w·exp(−dt/τ_w); the T-current gate (neurons with g_T > 0,
   on V at the start of the step) h ← h·exp(−dt/τ_h⁻) if V > V_h, else h ← 1 − (1 − h)·exp(−dt/τ_h⁺).
4. **Spikes**: non-refractory neurons with V ≥ V_th spike: V ← V_reset, counter ← round(t_ref/dt),
   g_w += b. Spike sources (``Network.add_spike_source``) spike at their given steps (round(t/dt)),
   when Poisson where a uniform draw is below 1 − exp(−rate·dt), and where ``run(inputs=...)`` says so.
5. **Propagation**: each synapse of a spiking source adds its weight to buffer[(t + d) mod S, r, post],
   d its delay in steps (≥ 1), so it arrives exactly d steps later (step 1 of step t + d).
6. **Plasticity** (plastic projections only, :mod:`thalia.spiking.plasticity`): traces decay by one
   step, weights change with the traces *before* this step's spikes are added, then the traces take
   the spikes (so a pre/post pair Δt apart sees exactly e^{−Δt/τ}); weights are clipped.

Accuracy and conventions: ``exponential_euler`` is exact for the conductances held at their
start-of-step values (Brian2's ``exponential_euler`` on the same equations gives the same traces to
1e-13 mV); against the exact ODE a decaying synaptic conductance delivers 1 + dt/(2τ) times its
charge, i.e. 0.05 mV on a 5 mV AMPA PSP at dt = 0.1 ms, first order in dt. ``averaged`` delivers the
exact charge and is second order: 4.5e-5 mV on that PSP, except that the NMDA Mg²⁺ block taken at the
start of the step keeps NMDA first order (6e-3 mV on an 8 mV NMDA PSP; both measured in
``tests/reference/test_spiking_neurons.py``).
The refractory hold lasts round(t_ref/dt) steps after the spike step (Brian2's ``refractory=t_ref``
holds one step less); a delay of d steps corresponds to Brian2's delay (d − 1)·dt.

Randomness: initial potentials, noise and Poisson draws come from one ``torch.Generator`` seeded with
``seed`` on the CPU. Noise and then Poisson draws are made in chunks of ``NOISE_CHUNK`` steps
([0, 1000), [1000, 2000), …) into a pool that runs consume, so the numbers (and the spikes) do not
depend on how the steps are split into runs, and both backends see the same numbers and give the same
spikes for every feature. (:func:`simulate` knows its length and draws a last, shorter chunk.)
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from thalia._validation import check_option
from thalia.spiking.network import (
    SPLITMIX_GAMMA,
    SPLITMIX_M1,
    SPLITMIX_M2,
    Compiled,
    Network,
    compile_network,
    poisson_cdf_table,
)
from thalia.spiking.neurons import MG_BLOCK_MM, MG_BLOCK_SLOPE_PER_MV, RECEPTORS

BACKENDS = ("auto", "torch", "numba", "graph")
INTEGRATORS = ("exponential_euler", "averaged")
#: State variables that ``record_vars`` may name (``g_adapt``: adaptation; ``h``: T-current gate).
STATE_VARS = ("V", "g_ampa", "g_gaba_a", "g_nmda", "g_gaba_b", "g_adapt", "h")
NOISE_CHUNK = 1000
NMDA = RECEPTORS.index("nmda")
AMPA, GABA_A = RECEPTORS.index("ampa"), RECEPTORS.index("gaba_a")


@dataclass
class SimulationResult:
    """Spikes and recordings of one run (one :meth:`Simulator.run` call, or :func:`simulate`).

    Attributes
    ----------
    dt_ms, duration_ms : float
    spike_steps, spike_ids : ndarray
        Step index (from the run's first step) and global neuron index of every spike, in time order.
    populations : dict name -> slice of global indices
    voltage : dict name -> (n_steps, n_recorded) ndarray of V (mV) of the recorded neurons
        (``state["V"]``).
    weights : dict projection name -> weights (nS) at the end of the run, in the projection's synapse order
        (read-only arrays when the network has no plasticity)
    wall_s : float
        Time of the step loop.
    backend : str
    currents : dict name -> (n_steps, 2) ndarray
        Summed AMPA and GABA-A currents (pA) of the populations in ``record_currents``.
    start_ms : float
        Time of the run's first step on the simulator's clock (t·dt); the times of this result
        (``spikes``, ``population_rate``, plots) count from it.
    state : dict variable -> dict name -> (n_steps, n_recorded) ndarray
        The ``record_vars`` of the recorded neurons after each step (V in mV, conductances in nS, h).
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
    start_ms: float = 0.0
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

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
        """(times in ms from the run's start, local neuron indices) of one population's spikes."""
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

    def plot_rates(self, populations: Sequence[str] | None = None, *, bin_ms: float = 5.0, ax=None):
        """Population rates (Hz, :meth:`population_rate` in bins of ``bin_ms``), one line per population
        (default: all). Returns the Figure."""
        import matplotlib.pyplot as plt

        if not np.isfinite(bin_ms) or bin_ms <= 0:
            raise ValueError(f"Invalid value for 'bin_ms': expected > 0 ms, got {bin_ms!r}.")
        names = list(self.populations) if populations is None else list(populations)
        fig, ax = plt.subplots(figsize=(8, 3)) if ax is None else (ax.figure, ax)
        for name in names:
            centres, rate = self.population_rate(name, bin_ms)
            ax.plot(centres, rate, label=name)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
        ax.legend(fontsize="small")
        return fig


class _Randomness:
    """Initial potentials, and a pool of noise and Poisson draws, from one CPU torch.Generator.

    The pool holds one chunk of draws, steps [start, stop): noise (stop − start, n) and then Poisson
    (stop − start, n_poisson), drawn when a run reaches ``stop``. Chunks are ``NOISE_CHUNK`` steps long,
    except that none extends past ``horizon`` (set by :func:`simulate`, which knows its length).
    """

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
        # key of the counter-based Poisson drive (drawn only when there is one: other runs keep their numbers)
        has_drive = compiled.has_drive
        self.drive_key = int(torch.randint(0, 2**62, (1,), generator=self.generator)) if has_drive else 0
        self.horizon: int | None = None
        self.start = self.stop = 0
        self.noise_chunk: np.ndarray | None = None
        self.poisson_chunk: np.ndarray | None = None

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

    def chunk(self, t: int) -> tuple[int, int, np.ndarray | None, np.ndarray | None]:
        """(start, stop, noise, poisson) of the pool chunk holding step ``t`` (drawn when needed)."""
        while t >= self.stop:
            size = NOISE_CHUNK
            if self.horizon is not None and self.stop < self.horizon:
                size = min(size, self.horizon - self.stop)
            self.start = self.stop
            self.noise_chunk, self.poisson_chunk = self.noise(size), self.poisson(size)
            self.stop = self.start + size
        return self.start, self.stop, self.noise_chunk, self.poisson_chunk

    def state(self, t: int) -> dict[str, Any]:
        """The generator's state and the pool's draws for steps t .. stop − 1."""
        left = max(self.stop - t, 0)
        noise = self.noise_chunk[t - self.start :] if left and self.noisy else np.zeros((0, self.n))
        poisson = self.poisson_chunk[t - self.start :] if left and self.poisson_chunk is not None else None
        return {
            "rng_state": self.generator.get_state().numpy().copy(),
            "pool_stop": int(t + left),
            "pool_noise": np.array(noise, dtype=np.float64),
            "pool_poisson": np.zeros((0, len(self.poisson_idx)), bool) if poisson is None else poisson.copy(),
        }

    def load(self, t: int, state: Mapping[str, Any]) -> None:
        self.generator.set_state(torch.from_numpy(np.array(state["rng_state"], dtype=np.uint8)))
        self.start, self.stop, self.horizon = t, int(state["pool_stop"]), None
        left = self.stop - t
        self.noise_chunk = np.array(state["pool_noise"], dtype=np.float64) if self.noisy and left else None
        has_poisson = len(self.poisson_idx) and left
        self.poisson_chunk = np.array(state["pool_poisson"], dtype=bool) if has_poisson else None


class Simulator:
    """A network's state, advanced by :meth:`run` as many times as needed (resumable, with inputs).

    Parameters
    ----------
    network : Network
    dt_ms : float
        Time step (ms); every delay must be a multiple of it.
    seed : int
        Seed of the run's ``torch.Generator`` (initial potentials, noise, Poisson draws).
    backend : {"auto", "torch", "numba", "graph"}
        ``"auto"``: the compiled CPU loop (numba) on the CPU in float64 when numba is installed, torch
        otherwise. ``"graph"`` (opt-in, not yet run on a GPU) is the torch step with static shapes,
        replayed from CUDA graphs of 100 steps (``thalia.spiking._cuda_graph``; on the CPU it runs
        without capture).
        Every backend runs every feature and gives the same spikes.
    device : str or torch.device
        Device of the torch backend (numba runs on the CPU only).
    dtype : torch.float64 or torch.float32
        Floating point type of the state; float32 (faster on a GPU) needs the torch or graph backend.
    record_v : dict name -> local indices, optional
        Neurons whose ``record_vars`` are recorded after every step.
    record_currents : sequence of str
        Populations whose summed AMPA and GABA-A currents (pA, those of each step's membrane update)
        are recorded for :meth:`SimulationResult.lfp`.
    record_vars : sequence of str
        Variables recorded for ``record_v``: any of ``STATE_VARS`` ("V", "g_ampa", "g_gaba_a", "g_nmda",
        "g_gaba_b", "g_adapt", "h"), after each step (the state the next step starts from).
    integrator : {"exponential_euler", "averaged"}
        Conductances of the membrane step: at the start of the step (first order, Brian2's scheme) or
        averaged exactly over the step (second order); see the module docstring.

    Examples
    --------
    >>> sim = Simulator(net, dt_ms=1.0, backend="numba")            # doctest: +SKIP
    >>> for _ in range(100):                                          # doctest: +SKIP
    ...     result = sim.run(10, inputs={"retina": spikes})
    """

    def __init__(
        self,
        network: Network,
        *,
        dt_ms: float = 0.1,
        seed: int = 0,
        backend: str = "auto",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        record_v: dict[str, Sequence[int]] | None = None,
        record_currents: Sequence[str] = (),
        record_vars: Sequence[str] = ("V",),
        integrator: str = "exponential_euler",
    ) -> None:
        check_option("backend", backend, BACKENDS)
        check_option("integrator", integrator, INTEGRATORS)
        check_option("dtype", dtype, (torch.float64, torch.float32))
        if not isinstance(network, Network):
            raise ValueError(f"Invalid value for 'network': expected a Network, got {type(network).__name__}.")
        if not np.isfinite(dt_ms) or dt_ms <= 0:
            raise ValueError(f"Invalid value for 'dt_ms': expected > 0, got {dt_ms!r}.")
        self.device = torch.device(device)
        self.backend = _pick_backend(backend, self.device, dtype)
        self.dt_ms, self.dtype, self.integrator = float(dt_ms), dtype, integrator
        self.compiled = compile_network(network, self.dt_ms)
        self._randomness = _Randomness(self.compiled, seed)
        record = _record_index(self.compiled, record_v)
        self._record_vars = _check_record_vars(record_vars)
        currents = _current_slices(self.compiled, record_currents)
        self._current_names = list(currents)
        self._columns = list(_trace_columns(record))
        watch = np.concatenate([*record.values()]) if record else np.zeros(0, np.int64)
        self._sources = {
            name: self.compiled.population_slices[name]
            for name, pop in network.populations.items()
            if pop.source is not None
        }
        options = {"watch": watch, "record_vars": self._record_vars, "currents": currents, "integrator": integrator}
        if self.backend == "numba":
            from thalia.spiking import _numba_engine

            _numba_engine._check_device(self.device)
            self._engine = _numba_engine.NumbaEngine(self.compiled, self._randomness, **options)
        elif self.backend == "graph":
            from thalia.spiking._cuda_graph import _GraphEngine

            self._engine = _GraphEngine(self.compiled, self._randomness, self.device, dtype, **options)
        else:
            self._engine = _TorchEngine(self.compiled, self._randomness, self.device, dtype, **options)
        # without plasticity the weights never change: read-only views of the projections' own arrays
        self._fixed_weights = (
            None if self.compiled.plastic else _read_only({p.name: p.weight_nS for p in network.projections})
        )

    @property
    def t(self) -> int:
        """Steps done so far."""
        return self._engine.t

    @property
    def t_ms(self) -> float:
        """Time (ms) of the next step: t·dt."""
        return self._engine.t * self.dt_ms

    def run(self, n_steps: int, *, inputs: Mapping[str, Any] | None = None, progress: bool = False) -> SimulationResult:
        """Advance the state by ``n_steps`` steps; returns the spikes and recordings of these steps.

        Parameters
        ----------
        n_steps : int
            Steps to run (>= 0). Runs of any lengths give the spikes of one long run.
        inputs : dict name -> bool array-like, optional
            Spikes forced on spike sources (populations made with ``Network.add_spike_source``), of
            shape (n_steps, n) or (n,) (the same every step): ``inputs[name][k, i]`` makes neuron i
            spike in the run's step k, in addition to its given and Poisson spikes. NumPy or torch.
        progress : bool
            Show a tqdm progress bar.
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 0:
            raise ValueError(f"Invalid value for 'n_steps': expected an integer >= 0, got {n_steps!r}.")
        n_steps = int(n_steps)
        forced = self._check_inputs(inputs, n_steps)
        t0, start = self._engine.t, time.perf_counter()
        if progress:
            with tqdm(total=n_steps, unit="step", desc=f"simulate ({self.backend})") as bar:
                steps, ids, traces, synaptic = self._engine.advance(n_steps, forced, bar.update)
                bar.update(n_steps - bar.n)
        else:
            steps, ids, traces, synaptic = self._engine.advance(n_steps, forced, None)
        return self._result(t0, n_steps, steps, ids, traces, synaptic, time.perf_counter() - start)

    def _result(self, t0, n_steps, steps, ids, traces, synaptic, wall_s: float) -> SimulationResult:
        state = {
            var: {name: traces[v][:, cols] for cols, name in self._columns} for v, var in enumerate(self._record_vars)
        }
        return SimulationResult(
            dt_ms=self.dt_ms,
            duration_ms=n_steps * self.dt_ms,
            spike_steps=steps - t0,
            spike_ids=ids,
            populations=dict(self.compiled.population_slices),
            voltage=state.get("V", {}),
            weights=self.weights() if self._fixed_weights is None else dict(self._fixed_weights),
            wall_s=wall_s,
            backend=self.backend,
            currents=dict(zip(self._current_names, synaptic, strict=True)),
            start_ms=t0 * self.dt_ms,
            state=state,
        )

    def weights(self) -> dict[str, np.ndarray]:
        """Current weights (nS) per projection, in the projection's synapse order (copies)."""
        return self.compiled.projection_weights(np.array(self._engine.weights(), dtype=np.float64))

    def _frozen_weights(self) -> dict[str, np.ndarray]:
        return _read_only(self.weights())

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: plain NumPy arrays and numbers (``np.savez`` can store it).

        Keys: ``t``, ``dt_ms``; per neuron ``V``, ``ref`` (refractory steps left), ``g`` (R, N; receptors in
        ``RECEPTORS`` order), ``g_adapt``, ``h``; ``buffer`` (S, R, N) ring buffer of pending arrivals
        (slot t mod S arrives at step t); ``weights`` (compiled synapse order); plasticity traces
        ``plasticity_x``, ``plasticity_y``, ``plasticity_theta``; ``rng_state`` (the torch.Generator's state,
        uint8) and the pool's draws not yet used, ``pool_stop``, ``pool_noise``, ``pool_poisson``; ``drive_key``
        (the key of the Poisson drive's counter-based generator; optional when loading).
        """
        t = self._engine.t
        state = {"t": t, "dt_ms": self.dt_ms, **self._engine.state(), **self._randomness.state(t)}
        return {**state, "drive_key": self._randomness.drive_key}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a simulator of the same network and dt,
        either backend): the next run gives, spike for spike, what the saved simulator's would."""
        drive_key = state.get("drive_key", self._randomness.drive_key) if isinstance(state, Mapping) else None
        state = _checked_state(state, self._state_shapes())
        if abs(float(state["dt_ms"]) - self.dt_ms) > 1e-12 * self.dt_ms:
            raise ValueError(f"Invalid value for state['dt_ms']: expected {self.dt_ms}, got {float(state['dt_ms'])}.")
        t = int(state["t"])
        if t < 0 or int(state["pool_stop"]) < t:
            raise ValueError(f"Invalid value for state['t'] / state['pool_stop']: got {t}, {int(state['pool_stop'])}.")
        left = int(state["pool_stop"]) - t
        for key, used in (("pool_noise", self._randomness.noisy), ("pool_poisson", len(self._randomness.poisson_idx))):
            if used and len(state[key]) != left:
                raise ValueError(f"Invalid shape for state[{key!r}]: expected {left} rows (pool_stop − t).")
        self._engine.load(t, state)
        self._randomness.load(t, state)
        self._randomness.drive_key = int(drive_key)
        if self._fixed_weights is not None:
            self._fixed_weights = self._frozen_weights()

    def _state_shapes(self) -> dict[str, tuple | None]:
        """Expected shape of each state entry (None: a number); ``-1``: any length (the pool's steps)."""
        n, c = len(self.compiled.params["C"]), self.compiled
        n_plastic = 0 if c.plastic is None else len(c.plastic["index"])
        return {
            "t": None, "dt_ms": None, "pool_stop": None, "V": (n,), "ref": (n,), "g": (len(RECEPTORS), n),
            "g_adapt": (n,), "h": (n,), "buffer": (c.n_slots, len(RECEPTORS), n), "weights": (len(c.syn_post),),
            "plasticity_x": (n_plastic,), "plasticity_y": (n_plastic,), "plasticity_theta": (n_plastic,),
            "rng_state": (-1,), "pool_noise": (-1, n if self._randomness.noisy else -1),
            "pool_poisson": (-1, len(self._randomness.poisson_idx)),
        }  # fmt: skip

    def _check_inputs(self, inputs: Mapping[str, Any] | None, n_steps: int) -> list[tuple[int, Any]]:
        """[(first global index, (n_steps, n) bool array or tensor)] of the forced input spikes."""
        if inputs is None:
            return []
        if not isinstance(inputs, Mapping):
            raise ValueError(f"Invalid value for 'inputs': expected a dict name -> bool array, got {type(inputs)}.")
        out = []
        for name, value in inputs.items():
            if name not in self._sources:
                what = "is not a spike source" if name in self.compiled.population_slices else "is unknown"
                raise ValueError(
                    f"Invalid value for 'inputs': population {name!r} {what}; only spike sources "
                    f"(Network.add_spike_source) receive inputs: {list(self._sources)}."
                )
            sl = self._sources[name]
            out.append((sl.start, _input_array(name, value, n_steps, sl.stop - sl.start)))
        return out


def _read_only(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {name: np.asarray(values, dtype=np.float64).view() for name, values in weights.items()}
    for values in out.values():
        values.flags.writeable = False
    return out


def _input_array(name: str, value: Any, n_steps: int, n: int):
    array = value if torch.is_tensor(value) else np.asarray(value)
    expected = f"a bool array of shape ({n_steps}, {n}) or ({n},)"
    if array.dtype not in (np.bool_, torch.bool):
        raise ValueError(f"Invalid value for inputs[{name!r}]: expected {expected}, got dtype {array.dtype}.")
    shape = tuple(array.shape)
    if shape == (n,):
        return array.expand(n_steps, n) if torch.is_tensor(array) else np.broadcast_to(array, (n_steps, n))
    if shape != (n_steps, n):
        raise ValueError(f"Invalid shape for inputs[{name!r}]: expected {expected}, got {shape}.")
    return array


def _checked_state(state: Mapping[str, Any], shapes: dict[str, tuple | None]) -> dict[str, Any]:
    if not isinstance(state, Mapping):
        raise ValueError(f"Invalid value for 'state': expected a dict from state_dict(), got {type(state)}.")
    missing = [key for key in shapes if key not in state]
    if missing:
        raise ValueError(f"Invalid value for 'state': missing {missing}.")
    out = {}
    for key, shape in shapes.items():
        value = np.array(state[key])  # a copy: the simulator never shares memory with the caller's state
        expected = () if shape is None else shape
        ok = value.ndim == len(expected) and all(e in (-1, s) for e, s in zip(expected, value.shape, strict=True))
        if not ok:
            raise ValueError(f"Invalid shape for state[{key!r}]: expected {expected}, got {value.shape}.")
        out[key] = value
    return out


def _pick_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    if backend == "auto":  # "graph" stays opt-in until it has run on a GPU (docs/spiking.md)
        fast = device.type == "cpu" and dtype == torch.float64 and _numba_available()
        return "numba" if fast else "torch"
    if backend == "numba" and dtype != torch.float64:
        raise ValueError(
            f"Invalid value for 'dtype': the numba backend runs in float64 only, got {dtype}; "
            "use backend='torch' or 'graph' (or 'auto') for float32."
        )
    return backend


def simulate(
    network: Network,
    duration_ms: float,
    *,
    dt_ms: float = 0.1,
    seed: int = 0,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    record_v: dict[str, Sequence[int]] | None = None,
    record_currents: Sequence[str] = (),
    record_vars: Sequence[str] = ("V",),
    integrator: str = "exponential_euler",
    progress: bool = False,
) -> SimulationResult:
    """Run ``network`` for ``duration_ms`` at step ``dt_ms``: one run of a new :class:`Simulator`
    (see it for the options, and the module docstring for the step semantics).

    ``backend="auto"`` picks the compiled CPU loop (numba) on the CPU when numba is installed and torch
    otherwise (the CUDA-graph engine ``"graph"`` is opt-in); every backend runs every feature
    (sources, T-currents, plasticity, current recordings) with the same spikes, and ``backend="numba"``
    runs on the CPU only. ``record_v`` maps population names to local indices whose V (and other
    ``record_vars``) are recorded;
    ``record_currents`` names populations whose summed AMPA and GABA-A currents (pA, at the start of each
    step's membrane update) are recorded for :meth:`SimulationResult.lfp`. ``progress=True`` shows a tqdm
    progress bar.
    """
    if not np.isfinite(duration_ms) or duration_ms <= 0 or not np.isfinite(dt_ms) or dt_ms <= 0:
        raise ValueError(f"Invalid value for 'duration_ms'/'dt_ms': expected > 0, got {duration_ms}, {dt_ms}.")
    simulator = Simulator(
        network, dt_ms=dt_ms, seed=seed, backend=backend, device=device, dtype=dtype, record_v=record_v,
        record_currents=record_currents, record_vars=record_vars, integrator=integrator,
    )  # fmt: skip
    n_steps = int(round(duration_ms / dt_ms))
    simulator._randomness.horizon = n_steps  # the draws of a run of known length (a short last chunk)
    return simulator.run(n_steps, progress=progress)


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


def _check_record_vars(names: Sequence[str]) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        check_option("record_vars", name, STATE_VARS)
    if len(set(names)) != len(names):
        raise ValueError(f"Invalid value for 'record_vars': a variable is named twice in {names}.")
    return names


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


class _TorchEngine:
    """The step loop in PyTorch (any device, float64 or float32); the state lives in tensors."""

    @torch.no_grad()
    def __init__(
        self,
        compiled: Compiled,
        randomness: _Randomness,
        device: torch.device,
        dtype: torch.dtype = torch.float64,
        *,
        watch: np.ndarray,
        record_vars: Sequence[str] = ("V",),
        currents: dict[str, slice] | None = None,
        integrator: str = "exponential_euler",
    ) -> None:
        self.compiled, self.randomness, self.device, self.dtype = compiled, randomness, device, dtype
        self.p = {k: self._tensor(v) for k, v in compiled.params.items()}
        self.n, self.R, self.S = len(compiled.params["C"]), len(RECEPTORS), compiled.n_slots
        self.t = 0
        self.V = self._tensor(randomness.V0).clone()
        self.g = torch.zeros(self.R, self.n, dtype=dtype, device=device)
        self.g_w = torch.zeros(self.n, dtype=dtype, device=device)
        self.ref = torch.zeros(self.n, dtype=torch.int64, device=device)
        self.h = self.p["h0"].clone()
        self.buffer = torch.zeros(self.S * self.R * self.n, dtype=dtype, device=device)
        self.indptr = torch.as_tensor(compiled.indptr, device=device)
        self.weight = self._tensor(compiled.syn_weight).clone()
        # per synapse: receptor·N + post (int32 where it fits) and delay steps (int16): 14 bytes with float64 weights
        target = compiled.syn_receptor.astype(np.int64) * self.n + compiled.syn_post
        small = self.R * self.n < 2**31
        self.target = torch.as_tensor(target.astype(np.int32) if small else target, device=device)
        del target
        self.delay = torch.as_tensor(compiled.syn_delay, device=device)
        self.watch = torch.as_tensor(watch, device=device)
        self.record_vars = list(record_vars)
        self.currents = list((currents or {}).values())
        self.plastic = _Plasticity(compiled, device, dtype) if compiled.plastic is not None else None
        self.t_current = compiled.has_t_current
        self.has_t = self.p["g_T"] > 0
        self.averaged = integrator == "averaged"
        self.poisson_idx = torch.as_tensor(randomness.poisson_idx, device=device)
        self.schedule_steps, self.schedule_ids = compiled.schedule if compiled.schedule is not None else ((), ())
        self.schedule_steps = list(np.asarray(self.schedule_steps).tolist())
        self.gl_el = self.p["g_L"] * self.p["E_L"] + self.p["I_bias"]
        cuba = self.p["cuba"] > 0
        # factor of each arrived conductance (current) in the membrane step: κ of the averaged integrator,
        # 1 for exponential Euler; current-based neurons always take their exact-integration factor
        self.factor = torch.where(cuba, self.p["avg_factor"], self.p["avg_factor"] if self.averaged else 1.0)
        self.g_coef = None if not bool(cuba.any()) else (~cuba).to(dtype)  # currents leave g_tot alone
        self.drive = _Drive(compiled, device, dtype) if compiled.has_drive else None
        self.c = {k: self.p[k] for k in _STEP_PARAMS}
        self.c.update(factor=self.factor, gl_el=self.gl_el, has_t=self.has_t)
        if self.g_coef is not None:
            self.c["g_coef"] = self.g_coef
        self.flags = (self.averaged, self.t_current, float(compiled.dt_ms))
        self._chunk_key: tuple[int, int] | None = None
        self._noise: torch.Tensor | None = None
        self._poisson: torch.Tensor | None = None

    def _tensor(self, values) -> torch.Tensor:
        tensor = torch.as_tensor(values, device=self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _chunk(self, t: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        """(first step, noise, Poisson spikes) of the pool chunk that holds step t, on the device."""
        start, stop, noise, poisson = self.randomness.chunk(t)
        if self._chunk_key != (start, stop):
            self._noise = None if noise is None else self._tensor(noise)
            self._poisson = None if poisson is None else torch.as_tensor(poisson, device=self.device)
            self._chunk_key = (start, stop)
        return start, self._noise, self._poisson

    def _inputs(self, inputs: list[tuple[int, Any]]) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not inputs:
            return None
        idx = torch.cat([torch.arange(a, a + x.shape[1], device=self.device) for a, x in inputs])
        values = [x if torch.is_tensor(x) else torch.from_numpy(np.array(x)) for _, x in inputs]
        return idx, torch.cat([x.to(self.device) for x in values], dim=1)

    @torch.no_grad()
    def advance(self, n_steps: int, inputs: list[tuple[int, Any]], progress: Callable[[int], object] | None):
        """Steps t .. t + n_steps − 1: (spike steps, spike ids, traces (n_vars, n_steps, n_watch),
        currents (n_currents, n_steps, 2)) as NumPy arrays; spike steps on the simulator's clock."""
        t0 = self.t
        traces = torch.zeros(len(self.record_vars), n_steps, len(self.watch), dtype=self.dtype, device=self.device)
        synaptic = torch.zeros(len(self.currents), n_steps, 2, dtype=self.dtype, device=self.device)
        forced = self._inputs(inputs)
        self.cursor = bisect.bisect_left(self.schedule_steps, t0)
        spikes: tuple[list, list] = ([], [])
        self._run(t0, n_steps, traces, synaptic, forced, spikes, progress)
        self.t = t0 + n_steps

        def cat(xs):
            return torch.cat(xs).cpu().numpy() if xs else np.zeros(0, np.int64)

        return cat(spikes[0]), cat(spikes[1]), traces.cpu().numpy(), synaptic.cpu().numpy()

    def _run(self, t0: int, n_steps: int, traces, synaptic, forced, spikes: tuple[list, list], progress) -> None:
        """All steps of one :meth:`advance` (``_GraphEngine`` replays most of them from CUDA graphs)."""
        self._steps(t0, 0, n_steps, traces, synaptic, forced, spikes, progress)

    def _steps(self, t0: int, k0: int, k1: int, traces, synaptic, forced, spikes: tuple[list, list], progress) -> None:
        """Steps t0 + k0 .. t0 + k1 − 1 one at a time (dynamic shapes); spikes appended to ``spikes``."""
        for k in range(k0, k1):
            if progress is not None and k and k % NOISE_CHUNK == 0:
                progress(NOISE_CHUNK)
            row = None if forced is None else (forced[0], forced[1][k])
            spike = self._step(t0 + k, synaptic[:, k] if self.currents else None, row)
            for v, var in enumerate(self.record_vars):
                traces[v, k] = self._variable(var)
            idx = torch.nonzero(spike).flatten()
            if len(idx):
                spikes[0].append(torch.full_like(idx, t0 + k))
                spikes[1].append(idx)
                self._propagate(t0 + k, idx)
            if self.plastic is not None:
                self.plastic.step(spike, self.weight)

    def _step(self, t: int, synaptic: torch.Tensor | None, forced) -> torch.Tensor:
        """Steps 1–4 of step t; returns the spikes."""
        start, noise, poisson = self._chunk(t)
        _arrive(self.g, self.buffer, t)
        if self.drive is not None:
            _drive_add(self.drive.groups, self.g, self.randomness.drive_key, t)
        noise_row = None if noise is None else noise[t - start]
        self.V, self.ref, self.h, spike, currents = _membrane(
            self.c, self.flags, self.V, self.g, self.g_w, self.ref, self.h, noise_row, self.currents
        )
        if synaptic is not None:
            synaptic.copy_(currents)
        if poisson is not None:
            spike[self.poisson_idx] |= poisson[t - start]
        while self.cursor < len(self.schedule_steps) and self.schedule_steps[self.cursor] == t:
            spike[self.schedule_ids[self.cursor]] = True
            self.cursor += 1
        if forced is not None:
            spike[forced[0]] |= forced[1]
        self.V, self.ref = _reset(self.c, self.V, self.ref, self.g_w, spike)
        return spike

    def _variable(self, var: str) -> torch.Tensor:
        if var == "V":
            return self.V[self.watch]
        if var == "g_adapt":
            return self.g_w[self.watch]
        if var == "h":
            return self.h[self.watch]
        return self.g[RECEPTORS.index(var[2:]), self.watch]

    def _propagate(self, t: int, idx: torch.Tensor) -> None:
        syn = _outgoing(self.indptr, idx)
        if len(syn):
            flat = ((self.delay[syn].to(torch.int64) + t) % self.S) * (self.R * self.n) + self.target[syn]
            self.buffer.index_add_(0, flat, self.weight[syn])

    def weights(self) -> np.ndarray:
        return self.weight.cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        def numpy(x):
            return x.cpu().numpy().copy()

        plastic = self.plastic or _Plasticity.empty(self.device, self.dtype)
        return {
            "V": numpy(self.V), "ref": numpy(self.ref), "g": numpy(self.g), "g_adapt": numpy(self.g_w),
            "h": numpy(self.h), "buffer": numpy(self.buffer).reshape(self.S, self.R, self.n),
            "weights": numpy(self.weight), "plasticity_x": numpy(plastic.x), "plasticity_y": numpy(plastic.y),
            "plasticity_theta": numpy(plastic.theta),
        }  # fmt: skip

    def load(self, t: int, state: Mapping[str, np.ndarray]) -> None:
        self.t = t
        self.V, self.g, self.g_w, self.h = (self._tensor(state[k]).clone() for k in ("V", "g", "g_adapt", "h"))
        self.ref = torch.as_tensor(np.asarray(state["ref"], dtype=np.int64), device=self.device)
        self.buffer = self._tensor(np.asarray(state["buffer"]).reshape(-1)).clone()
        self.weight = self._tensor(state["weights"]).clone()
        if self.plastic is not None:
            self.plastic.x, self.plastic.y, self.plastic.theta = (
                self._tensor(state[k]).clone() for k in ("plasticity_x", "plasticity_y", "plasticity_theta")
            )
        self._chunk_key = None


#: Per-neuron constants of the membrane step (``_membrane``), from the compiled network's parameters.
_STEP_PARAMS = (
    "mg g_L E_rev adapt_E V_h g_T E_T h_decay_minus h_decay_plus C noise_scale decay adapt_decay V_th "
    "adapt_avg_factor V_reset ref_steps adapt_b"
).split()


def _arrive(g: torch.Tensor, buffer: torch.Tensor, t) -> None:
    """Step 1 (arrivals): g += buffer slot t mod S, then that slot is cleared. ``t``: an int, or a 0-d
    int64 tensor on g's device (a step captured in a CUDA graph)."""
    rows = buffer.view(-1, g.numel())
    slot = t % rows.shape[0]
    if isinstance(slot, int):
        g += rows[slot].view(g.shape)
        rows[slot] = 0.0
    else:  # index ops: indexing with a 0-d tensor would read it on the host (no capture, no compile)
        slot = slot.view(1)
        g += rows.index_select(0, slot).view(g.shape)
        rows.index_fill_(0, slot, 0.0)


def _membrane(c: dict, flags: tuple[bool, bool, float], V, g, g_w, ref, h, noise_row, currents: list[slice]):
    """Steps 2–4 before resets (module docstring): (V, ref, h, spikes of the membrane, currents (n, 2) or
    None). ``c``: the ``_STEP_PARAMS`` tensors plus ``factor``, ``gl_el``, ``has_t`` and (current-based
    neurons) ``g_coef``; ``flags``: (averaged, T-current, dt in ms). g and g_w decay in place."""
    averaged, t_current, dt_ms = flags
    active = ref == 0
    block = 1.0 / (1.0 + c["mg"] / MG_BLOCK_MM * torch.exp(-MG_BLOCK_SLOPE_PER_MV * V))
    g_eff = g * c["factor"]
    g_eff[NMDA] = g_eff[NMDA] * block
    g_w_eff = g_w * c["adapt_avg_factor"] if averaged else g_w
    synaptic = _currents(c, g_eff, V, currents) if currents else None
    g_coef = c.get("g_coef")
    g_tot = c["g_L"] + (g_eff.sum(0) if g_coef is None else (g_eff * g_coef).sum(0)) + g_w_eff
    drive = c["gl_el"] + (g_eff * c["E_rev"]).sum(0) + g_w_eff * c["adapt_E"]
    if t_current:
        above = V > c["V_h"]
        g_t = c["g_T"] * h * above
        g_tot, drive = g_tot + g_t, drive + g_t * c["E_T"]
        gate = torch.where(above, h * c["h_decay_minus"], 1.0 - (1.0 - h) * c["h_decay_plus"])
        h = torch.where(c["has_t"], gate, h)
    v_inf = drive / g_tot
    v_new = v_inf + (V - v_inf) * torch.exp(-dt_ms * g_tot / c["C"])
    if noise_row is not None:
        v_new = v_new + c["noise_scale"] * noise_row
    V = torch.where(active, v_new, V)
    ref = torch.where(active, ref, ref - 1)
    g *= c["decay"]
    g_w *= c["adapt_decay"]
    return V, ref, h, active & (V >= c["V_th"]), synaptic


def _reset(c: dict, V, ref, g_w, spike):
    """Step 4's resets of the spiking neurons: (V, ref); adaptation g_w += b in place."""
    g_w += spike * c["adapt_b"]
    return torch.where(spike, c["V_reset"], V), torch.where(spike, c["ref_steps"], ref)


def _currents(c: dict, g_eff, V, currents: list[slice]) -> torch.Tensor:
    """Summed AMPA and GABA-A currents (pA) of each population slice: (n_currents, 2)."""
    g_coef = c.get("g_coef")
    V = V if g_coef is None else V * g_coef  # currents: s_r·I_r (E_rev holds s_r)
    ampa = g_eff[AMPA] * (c["E_rev"][AMPA] - V)
    gaba = g_eff[GABA_A] * (c["E_rev"][GABA_A] - V)
    return torch.stack([torch.stack((ampa[sl].sum(), gaba[sl].sum())) for sl in currents])


def _drive_add(groups: list, g: torch.Tensor, key, t) -> None:
    """The Poisson drive of step t (int or 0-d tensor) into g (:class:`_Drive`); ``key``: int or 0-d tensor."""
    flat_g, n = g.view(-1), g.shape[1]
    for members, cdf, flat, weight in groups:
        u = splitmix_uniform(key, t * n + members)
        counts = torch.searchsorted(cdf, u)  # min{k : u <= F_k} = #{k : F_k < u}
        flat_g[flat] += counts.to(g.dtype) * weight


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
    """One run of ``n_steps`` from the initial state (the tuple of ``_numba_engine.run``): spike steps,
    spike ids, V traces (n_steps, n_recorded), final weights, currents (n_currents, n_steps, 2)."""
    watch = np.concatenate([*record.values()]) if record else np.zeros(0, np.int64)
    engine = _TorchEngine(compiled, randomness, torch.device(device), watch=watch, currents=currents)
    randomness.horizon = n_steps
    steps, ids, traces, synaptic = engine.advance(n_steps, [], progress)
    return steps, ids, traces[0], engine.weights(), synaptic


class _Drive:
    """The Poisson drive (``Network.add_poisson_drive``): per step and driven neuron a count k from the
    inverse CDF of Poisson(λ) at a counter-based uniform, adding k·w to the drive's receptor
    (:func:`_drive_add`). ``groups``: (neurons, CDF row, receptor·N + neuron, weight) per distinct λ."""

    def __init__(self, compiled: Compiled, device: torch.device, dtype: torch.dtype) -> None:
        p = compiled.params
        idx = np.nonzero(p["drive_receptor"] >= 0)[0]
        rows, table = poisson_cdf_table(p["drive_lambda"][idx])
        self.groups = []  # (neurons, CDF row, receptor·N + neuron, weight) per distinct λ
        for row, lam in enumerate(rows):
            members = idx[p["drive_lambda"][idx] == lam]
            flat = p["drive_receptor"][members] * len(p["C"]) + members
            self.groups.append(
                tuple(torch.as_tensor(x, device=device) for x in (members, table[row], flat))
                + (torch.as_tensor(p["drive_weight"][members], device=device, dtype=dtype),)
            )


def splitmix_uniform(key: int, counters: torch.Tensor) -> torch.Tensor:
    """Uniforms in [0, 1) (float64) of a counter-based generator: SplitMix64's output function on
    key + (counter + 1)·γ in wrapping 64-bit arithmetic (logical shifts by masking)."""

    def shr(z: torch.Tensor, bits: int) -> torch.Tensor:
        return (z >> bits) & ((1 << (64 - bits)) - 1)

    z = (counters + 1) * SPLITMIX_GAMMA + key
    z = (z ^ shr(z, 30)) * SPLITMIX_M1
    z = (z ^ shr(z, 27)) * SPLITMIX_M2
    z = z ^ shr(z, 31)
    return shr(z, 11).to(torch.float64) * 2.0**-53


def _outgoing(indptr: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Indices of all synapses of the given sources (CSR ranges, concatenated)."""
    starts = indptr[sources]
    counts = indptr[sources + 1] - starts
    total = int(counts.sum())
    offsets = torch.repeat_interleave(starts - torch.cumsum(counts, 0) + counts, counts)
    return offsets + torch.arange(total, device=indptr.device)


class _Plasticity:
    """Per-synapse traces and weight updates of the plastic synapses (step 6)."""

    def __init__(self, compiled: Compiled, device: torch.device, dtype: torch.dtype = torch.float64) -> None:
        q = {k: torch.as_tensor(v, device=device) for k, v in compiled.plastic.items()}
        q = {k: v.to(dtype) if v.is_floating_point() else v for k, v in q.items()}
        self.q, self.dt_ms = q, compiled.dt_ms
        self.bcm = q["eta"] > 0
        self.x = torch.zeros_like(q["a_plus"])
        self.y = torch.zeros_like(q["a_plus"])
        self.theta = torch.where(self.bcm, q["target"], torch.zeros_like(q["a_plus"]))

    @classmethod
    def empty(cls, device: torch.device, dtype: torch.dtype):
        """A stand-in with empty traces (networks without plasticity)."""
        self = cls.__new__(cls)
        self.x = self.y = self.theta = torch.zeros(0, dtype=dtype, device=device)
        return self

    def step(self, spike: torch.Tensor, weight: torch.Tensor) -> None:
        q = self.q
        self.x *= q["decay_x"]
        self.y *= q["decay_y"]
        pre = spike[q["pre"]].to(self.x.dtype)
        post = spike[q["post"]].to(self.x.dtype)
        stdp = q["a_plus"] * self.x * post - q["a_minus"] * self.y * pre
        self.x += pre
        self.y += post
        rate_x, rate_y = self.x * q["rate_x"], self.y * q["rate_y"]
        relax = (rate_y**2 / q["target"] - self.theta) * self.dt_ms / q["tau_theta"]
        self.theta += torch.where(self.bcm, relax, torch.zeros_like(relax))
        bcm = q["eta"] * (self.dt_ms / 1000.0) * rate_x * rate_y * (rate_y - self.theta)
        w = weight[q["index"]] + (stdp + bcm)
        weight[q["index"]] = torch.minimum(torch.maximum(w, q["w_min"]), q["w_max"])

"""The flat network description: populations and projections, compiled to arrays for the engines.

Regions (thalamus, cortex) add populations and projections to one :class:`Network`; one engine
steps the whole description (DESIGN principle 3). Nothing here is region-specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from thalia.spiking.connectivity import sample_weights
from thalia.spiking.neurons import CURRENT_SIGN, LIF, RECEPTORS
from thalia.spiking.plasticity import BCM, STDP, STDPBCM


@dataclass(frozen=True)
class Population:
    """``n`` neurons of one model; a spike source (``source`` set) emits given or Poisson spikes;
    ``drive`` is an independent Poisson input onto every neuron (:meth:`Network.add_poisson_drive`)."""

    name: str
    n: int
    neuron: LIF
    offset: int  # first global index
    source: SpikeSource | None = None
    drive: PoissonDrive | None = None


@dataclass(frozen=True)
class PoissonDrive:
    """Independent Poisson input of ``rate_hz`` onto each neuron of a population: per step a count
    k ~ Poisson(rate·dt) of inputs, each adding ``weight`` (nS, or pA onto current-based neurons) to
    ``receptor`` (the sum of K independent Poisson trains of rate r is one of rate K·r)."""

    rate_hz: float
    weight: float
    receptor: str = "ampa"


#: Largest mean count of Poisson drive inputs per step (the inverse-CDF draw stays accurate below it).
MAX_DRIVE_PER_STEP = 100.0
#: SplitMix64 (Steele, Lea & Flood 2014) constants, as signed 64-bit integers: the drive's uniform of
#: neuron i at step t is mix(key + (t·N + i + 1)·γ) >> 11 times 2⁻⁵³ (a counter-based generator: any
#: backend computes any step's numbers directly, so runs split anywhere give the same spikes).
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15 - 2**64
SPLITMIX_M1 = 0xBF58476D1CE4E5B9 - 2**64
SPLITMIX_M2 = 0x94D049BB133111EB - 2**64


@dataclass(frozen=True)
class SpikeSource:
    """Spikes at given times (``times_ms[i]``: the times of neuron i) and/or Poisson at ``rate_hz``."""

    times_ms: tuple = ()
    rate_hz: float = 0.0


@dataclass(frozen=True)
class Projection:
    """Synapses pre → post on one receptor with an axonal delay (ms): one for all synapses (a float),
    or one per synapse (a float32 array, rounded to the time step when compiled)."""

    name: str
    pre: str
    post: str
    receptor: str
    delay_ms: float | np.ndarray
    pre_idx: np.ndarray  # local indices in ``pre``
    post_idx: np.ndarray  # local indices in ``post``
    weight_nS: np.ndarray
    plasticity: STDP | BCM | STDPBCM | None = None


@dataclass
class Network:
    """Populations and projections (build it, then hand it to :func:`thalia.spiking.simulate`)."""

    populations: dict[str, Population] = field(default_factory=dict)
    projections: list[Projection] = field(default_factory=list)

    @property
    def n_neurons(self) -> int:
        return sum(p.n for p in self.populations.values())

    def add_population(self, name: str, n: int, neuron: LIF | None = None) -> Population:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Invalid value for 'name': expected a non-empty string, got {name!r}.")
        if name in self.populations:
            raise ValueError(f"Invalid value for 'name': a population {name!r} exists already.")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"Invalid value for 'n' of population {name!r}: expected an integer >= 1, got {n!r}.")
        neuron = LIF() if neuron is None else neuron
        if not isinstance(neuron, LIF):
            raise ValueError(f"Invalid value for 'neuron' of population {name!r}: expected a LIF, got {neuron!r}.")
        population = Population(name, int(n), neuron, self.n_neurons)
        self.populations[name] = population
        return population

    def add_spike_source(
        self, name: str, n: int | None = None, *, times_ms: Any = None, rate_hz: float = 0.0
    ) -> Population:
        """A population that emits spikes at given times (``times_ms``: one sequence per neuron) and/or
        as Poisson processes of ``rate_hz`` (drawn from the run's seeded generator).

        With neither (``add_spike_source(name, n)``) it is a pure external input: its spikes come only
        from ``Simulator.run(inputs={name: ...})``, which any spike source accepts."""
        if n is None and times_ms is None:
            raise ValueError(f"Invalid value for 'n' of source {name!r}: give n or times_ms.")
        times = [] if times_ms is None else [np.sort(np.asarray(t, dtype=float).ravel()) for t in times_ms]
        n = len(times) if n is None else n
        if times and len(times) != n:
            raise ValueError(
                f"Invalid value for 'times_ms' of source {name!r}: expected {n} sequences, got {len(times)}."
            )
        if any((t < 0).any() or not np.isfinite(t).all() for t in times):
            raise ValueError(f"Invalid value for 'times_ms' of source {name!r}: expected finite times >= 0 ms.")
        if not np.isfinite(rate_hz) or rate_hz < 0:
            raise ValueError(f"Invalid value for 'rate_hz' of source {name!r}: expected >= 0 Hz, got {rate_hz!r}.")
        population = self.add_population(name, n)
        population = replace(population, source=SpikeSource(tuple(times), rate_hz))
        self.populations[name] = population
        return population

    def add_poisson_drive(self, population: str, rate_hz: float, weight: float, receptor: str = "ampa") -> Population:
        """Independent Poisson input (``rate_hz`` in total per neuron, each event adding ``weight`` nS —
        pA onto current-based neurons — to ``receptor``) onto every neuron of ``population``: the
        external input of the Potjans–Diesmann model (K_ext sources of 8 Hz each: rate K_ext·8 Hz)
        without K_ext synapses per neuron. Counts per step come from a counter-based generator keyed
        by the run's seed (the same on every backend and device)."""
        if population not in self.populations:
            raise ValueError(
                f"Invalid value for 'population': unknown population {population!r}; known: {list(self.populations)}."
            )
        pop = self.populations[population]
        if pop.source is not None:
            raise ValueError(
                f"Invalid value for 'population': {population!r} is a spike source; drive a neuron population."
            )
        if pop.drive is not None:
            raise ValueError(f"Invalid value for 'population': {population!r} has a Poisson drive already.")
        if receptor not in RECEPTORS:
            raise ValueError(f"Invalid value for 'receptor' of the drive of {population!r}: allowed {list(RECEPTORS)}, "
                             f"got {receptor!r}.")  # fmt: skip
        for name, value in (("rate_hz", rate_hz), ("weight", weight)):
            if isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise ValueError(
                    f"Invalid value for {name!r} of the drive of {population!r}: expected a finite number >= 0, "
                    f"got {value!r}."
                )
        pop = replace(pop, drive=PoissonDrive(float(rate_hz), float(weight), receptor))
        self.populations[population] = pop
        return pop

    def connect(
        self,
        pre: str,
        post: str,
        rule: Any,
        *,
        weight_nS: Any,
        receptor: str = "ampa",
        delay_ms: Any = 1.0,
        rng: np.random.Generator | int | None = 0,
        name: str | None = None,
        plasticity: STDP | BCM | STDPBCM | None = None,
    ) -> Projection:
        """Add a projection built by a connectivity ``rule`` (see :mod:`thalia.spiking.connectivity`).

        ``weight_nS``: a constant, a distribution (``sample(rng, n)``) or one value per synapse, in nS
        onto conductance-based neurons and in pA onto current-based ones (``LIF(synapse="current")``).
        ``delay_ms``: one delay (a multiple of dt), or per synapse a distribution (e.g.
        :class:`~thalia.spiking.connectivity.TruncatedNormal`) or an array; per-synapse delays are
        rounded to the nearest step when compiled, and those below half a step become one step.
        """
        label = name or f"{pre}->{post}:{receptor}"
        for role, pop in (("pre", pre), ("post", post)):
            if pop not in self.populations:
                raise ValueError(
                    f"Invalid value for {role!r} of projection {label!r}: unknown population {pop!r}; "
                    f"known: {list(self.populations)}."
                )
        if receptor not in RECEPTORS:
            raise ValueError(
                f"Invalid value for 'receptor' of projection {label!r}: allowed {list(RECEPTORS)}, got {receptor!r}."
            )
        if np.ndim(delay_ms) == 0 and not hasattr(delay_ms, "sample") and (not np.isfinite(delay_ms) or delay_ms <= 0):
            raise ValueError(
                f"Invalid value for 'delay_ms' of projection {label!r}: expected > 0 ms, got {delay_ms!r}."
            )
        if plasticity is not None and not isinstance(plasticity, STDP | BCM | STDPBCM):
            raise ValueError(
                f"Invalid value for 'plasticity' of projection {label!r}: expected STDP(...), BCM(...), "
                f"STDPBCM(...) or None, got {plasticity!r}."
            )
        if any(p.name == label for p in self.projections):
            raise ValueError(f"Invalid value for 'name': a projection {label!r} exists already.")
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        a, b = self.populations[pre], self.populations[post]
        pre_idx, post_idx = rule.build(a.n, b.n, pre == post, generator)
        index = np.int32 if max(a.n, b.n) < 2**31 else np.int64
        pre_idx, post_idx = np.asarray(pre_idx, dtype=index), np.asarray(post_idx, dtype=index)
        weights = sample_weights(weight_nS, generator, len(pre_idx))
        delays = _sample_delays(delay_ms, generator, len(pre_idx), label)
        projection = Projection(label, pre, post, receptor, delays, pre_idx, post_idx, weights, plasticity)
        self.projections.append(projection)
        return projection


@dataclass(frozen=True)
class Compiled:
    """The network as flat arrays (global neuron indices; synapses sorted by source).

    Per neuron: C, g_L, E_L, V_th, V_reset, ref_steps, I_bias, E_rev (R, N), decay (R, N),
    mg, adapt_b, adapt_E, adapt_decay, noise_scale, V0 mean/sd, ``cuba`` (1: current-based; then E_rev
    holds the sign of each receptor's current, mg is 0 and ``avg_factor`` the exact-integration factor
    used by every integrator), Poisson drive (``drive_lambda`` mean count per step,
    ``drive_weight``, ``drive_receptor``, −1 for none). Per synapse: post (int32), weight (float64),
    delay (steps, int16), receptor (int8); ``indptr`` (N + 1) over sources. ``n_slots`` = longest delay + 1.
    """

    dt_ms: float
    params: dict[str, np.ndarray]
    indptr: np.ndarray
    syn_post: np.ndarray
    syn_weight: np.ndarray
    syn_delay: np.ndarray
    syn_receptor: np.ndarray
    n_slots: int
    population_slices: dict[str, slice]
    #: original (projection-concatenated) index of each compiled synapse, and each projection's range
    syn_original: np.ndarray | None = None
    projection_ranges: dict[str, tuple[int, int]] | None = None
    #: plastic synapses: compiled indices and per-synapse rule parameters (None: no plasticity)
    plastic: dict[str, np.ndarray] | None = None
    #: given spikes of spike sources: (steps, global ids) sorted by step (None: none)
    schedule: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def has_t_current(self) -> bool:
        return bool((self.params["g_T"] > 0).any())

    @property
    def has_drive(self) -> bool:
        return bool((self.params["drive_receptor"] >= 0).any())

    @property
    def synapse_bytes(self) -> int:
        """Bytes of the per-synapse arrays (post, weight, delay, receptor, original order)."""
        arrays = (self.syn_post, self.syn_weight, self.syn_delay, self.syn_receptor, self.syn_original)
        return int(sum(a.nbytes for a in arrays if a is not None))

    def projection_weights(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Per projection, the weights (compiled order in) in the projection's own synapse order."""
        original = np.empty_like(weights)
        original[self.syn_original] = weights
        return {name: original[a:b] for name, (a, b) in self.projection_ranges.items()}


def delay_steps(delay_ms: float | np.ndarray, dt_ms: float, name: str) -> int | np.ndarray:
    """Delay in steps: one delay must be a multiple of dt of at least one step; per-synapse delays (an
    array) are rounded to the nearest step, at least one (int16 where they fit)."""
    if np.ndim(delay_ms):
        steps = np.maximum(np.rint(np.asarray(delay_ms, dtype=np.float64) / dt_ms), 1.0)
        return steps.astype(np.int16 if not len(steps) or steps.max() < 2**15 else np.int32)
    steps = delay_ms / dt_ms
    rounded = int(round(steps))
    if rounded < 1 or abs(steps - rounded) > 1e-6 * max(1.0, steps):
        raise ValueError(
            f"Invalid value for 'delay_ms' of projection {name!r}: expected a multiple of dt = {dt_ms} ms "
            f"of at least one step, got {delay_ms} ms."
        )
    return rounded


def _sample_delays(delay_ms: Any, rng: np.random.Generator, n: int, label: str) -> float | np.ndarray:
    """One delay (float), or per synapse (float32 array, ms) from a distribution or an array."""
    if hasattr(delay_ms, "sample"):
        values = delay_ms.sample(rng, n)
    elif np.ndim(delay_ms):
        values = np.asarray(delay_ms, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(
                f"Invalid shape for 'delay_ms' of projection {label!r}: expected ({n},) (one per synapse), "
                f"got {values.shape}."
            )
    else:
        return float(delay_ms)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError(f"Invalid value for 'delay_ms' of projection {label!r}: expected finite delays > 0 ms.")
    return np.asarray(values, dtype=np.float32)


def _smallest_int(limit: int):
    return np.int32 if limit < 2**31 else np.int64


def compile_network(network: Network, dt_ms: float) -> Compiled:
    """Flatten ``network`` at time step ``dt_ms``.

    Synapses are gathered one presynaptic population at a time (populations hold consecutive global
    indices), each group sorted stably by source, which is the stable sort of all synapses by source
    with a peak memory of one group; indices are int32 (int64 beyond 2³¹), delays int16 steps.
    """
    if not network.populations:
        raise ValueError("Invalid value for 'network': it has no populations.")
    n = network.n_neurons
    params = _neuron_params(network, dt_ms)
    projections = network.projections
    steps = [delay_steps(p.delay_ms, dt_ms, p.name) for p in projections]
    longest = max((int(np.max(d, initial=0)) for d in steps), default=0)
    bounds = np.cumsum([0] + [len(p.pre_idx) for p in projections])
    total = int(bounds[-1])
    syn_post = np.empty(total, _smallest_int(n))
    syn_weight = np.empty(total, np.float64)
    syn_delay = np.empty(total, np.int16 if longest < 2**15 else np.int32)
    syn_receptor = np.empty(total, np.int8)
    order = np.empty(total, _smallest_int(total))
    counts = np.zeros(n, dtype=np.int64)
    start = 0
    for pop in sorted(network.populations.values(), key=lambda p: p.offset):
        group = [k for k, p in enumerate(projections) if p.pre == pop.name]
        if not group:
            continue
        pre = np.concatenate([projections[k].pre_idx for k in group])
        counts[pop.offset : pop.offset + pop.n] = np.bincount(pre, minlength=pop.n)
        perm = np.argsort(pre.astype(np.uint16) if pop.n <= 2**16 else pre, kind="stable")  # radix sort ≤ 16 bit
        del pre
        stop = start + len(perm)

        def gather(values, out, perm=perm, start=start, stop=stop):
            out[start:stop] = np.concatenate(values)[perm]

        gather([np.arange(bounds[k], bounds[k + 1], dtype=order.dtype) for k in group], order)
        gather([projections[k].post_idx + network.populations[projections[k].post].offset for k in group], syn_post)
        gather([projections[k].weight_nS for k in group], syn_weight)
        gather([np.broadcast_to(steps[k], len(projections[k].pre_idx)) for k in group], syn_delay)
        gather([np.full(len(projections[k].pre_idx), RECEPTORS.index(projections[k].receptor), np.int8)
                for k in group], syn_receptor)  # fmt: skip
        start = stop
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    slices = {p.name: slice(p.offset, p.offset + p.n) for p in network.populations.values()}
    ranges = {p.name: (int(bounds[k]), int(bounds[k + 1])) for k, p in enumerate(projections)}
    plastic = _plastic_arrays(projections, bounds, order, dt_ms)
    if plastic is not None:
        where = plastic["index"]
        pre_of = np.repeat(np.arange(n), np.diff(indptr))
        plastic["pre"], plastic["post"] = pre_of[where], syn_post[where].astype(np.int64)
    return Compiled(
        dt_ms, params, indptr, syn_post, syn_weight, syn_delay, syn_receptor, longest + 1, slices, order, ranges,
        plastic, _schedule(network, dt_ms),
    )  # fmt: skip


def _neuron_params(network: Network, dt_ms: float) -> dict[str, np.ndarray]:
    """Per-neuron parameter arrays (receptor parameters (R, N)) of every population, concatenated."""
    per_neuron: dict[str, list] = {}
    for pop in network.populations.values():
        values = _neuron_arrays(pop.neuron, dt_ms)
        values["V_th"] = np.inf if pop.source is not None else values["V_th"]  # sources never fire by themselves
        values["poisson_p"] = 0.0 if pop.source is None else -np.expm1(-pop.source.rate_hz * dt_ms / 1000.0)
        values.update(_drive_arrays(pop, dt_ms))
        for key, value in values.items():
            per_neuron.setdefault(key, []).append(np.broadcast_to(value, (*np.shape(value)[:-1], pop.n)))
    params = {k: np.concatenate(v, axis=-1).astype(np.float64) for k, v in per_neuron.items()}
    for key in ("ref_steps", "drive_receptor"):
        params[key] = params[key].astype(np.int64)
    return params


def poisson_cdf_table(lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, table): the distinct mean counts λ > 0 of ``lambdas`` and, per row, the Poisson CDF
    F_k = P(count ≤ k) for k = 0 … K − 1, where K − 1 is the first k at which every row's F_k rounds to
    1.0 (entries set to exactly 1.0 from there). A uniform u ∈ [0, 1) gives the count
    #{k : F_k < u} = min{k : u ≤ F_k} (inverse CDF; one table on every backend gives the same counts)."""
    from scipy.special import pdtr  # the Poisson CDF

    rows = np.unique(np.asarray(lambdas, dtype=np.float64)[np.asarray(lambdas) > 0])
    if not len(rows):
        return rows, np.ones((0, 1))
    k_max = int(rows.max() + 20 * np.sqrt(rows.max()) + 40)  # P(count >= k_max) < 1e-30 for λ <= 100
    table = np.maximum.accumulate(pdtr(np.arange(k_max)[None, :], rows[:, None]), axis=1)
    table[:, -1] = 1.0
    width = int(np.argmax((table >= 1.0).all(axis=0))) + 1
    return rows, np.ascontiguousarray(np.minimum(table[:, :width], 1.0))


def _drive_arrays(pop: Population, dt_ms: float) -> dict[str, float]:
    """Poisson drive of a population: mean count per step λ, weight, receptor (−1: none)."""
    drive = pop.drive
    if drive is None or drive.rate_hz == 0 or drive.weight == 0:
        return {"drive_lambda": 0.0, "drive_weight": 0.0, "drive_receptor": -1}
    lam = drive.rate_hz * dt_ms / 1000.0
    if lam > MAX_DRIVE_PER_STEP:
        raise ValueError(
            f"Invalid value for 'rate_hz' of the drive of {pop.name!r}: {drive.rate_hz} Hz gives {lam:g} inputs per "
            f"step of {dt_ms} ms; at most {MAX_DRIVE_PER_STEP:g} are supported (use a smaller dt)."
        )
    return {"drive_lambda": lam, "drive_weight": drive.weight, "drive_receptor": RECEPTORS.index(drive.receptor)}


def _schedule(network: Network, dt_ms: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, global ids) of the given source spikes, sorted by step then neuron."""
    steps, ids = [], []
    for pop in network.populations.values():
        for i, times in enumerate(pop.source.times_ms if pop.source is not None else ()):
            steps.append(np.round(times / dt_ms).astype(np.int64))
            ids.append(np.full(len(times), pop.offset + i, dtype=np.int64))
    if not steps or not sum(len(s) for s in steps):
        return None
    steps, ids = np.concatenate(steps), np.concatenate(ids)
    order = np.lexsort((ids, steps))
    return steps[order], ids[order]


def _plastic_arrays(projections, bounds, order, dt_ms: float) -> dict[str, np.ndarray] | None:
    """Per plastic synapse (compiled order): rule (1 STDP, 2 BCM, 3 both) and its parameters. STDP
    amplitudes are 0 for BCM-only synapses and η is 0 for STDP-only ones; ``rate_x``/``rate_y`` turn
    the unitless traces into the BCM rates (1000/τ, Hz)."""
    rows = []
    for k, proj in enumerate(projections):
        rule = proj.plasticity
        if rule is None:
            continue
        stdp = rule.stdp if isinstance(rule, STDPBCM) else rule if isinstance(rule, STDP) else None
        bcm = rule.bcm if isinstance(rule, STDPBCM) else rule if isinstance(rule, BCM) else None
        code = 3 if stdp and bcm else 1 if stdp else 2
        tau_x = stdp.tau_plus_ms if stdp else bcm.tau_pre_ms
        tau_y = stdp.tau_minus_ms if stdp else bcm.tau_post_ms
        values = (
            code, stdp.A_plus_nS if stdp else 0.0, stdp.A_minus_nS if stdp else 0.0, bcm.eta if bcm else 0.0,
            tau_x, tau_y, bcm.tau_theta_ms if bcm else 1.0, bcm.target_hz if bcm else 1.0, rule.w_min_nS,
            rule.w_max_nS,
        )  # fmt: skip
        rows.append((np.arange(bounds[k], bounds[k] + len(proj.pre_idx)), values))
    if not rows:
        return None
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))  # compiled position of each original synapse
    index = np.concatenate([where[r[0]] for r in rows])
    keys = ("rule", "a_plus", "a_minus", "eta", "tau_x", "tau_y", "tau_theta", "target", "w_min", "w_max")
    out = {key: np.concatenate([np.full(len(r[0]), r[1][i], dtype=float) for r in rows]) for i, key in enumerate(keys)}
    out["decay_x"], out["decay_y"] = np.exp(-dt_ms / out["tau_x"]), np.exp(-dt_ms / out["tau_y"])
    out["rate_x"], out["rate_y"] = 1000.0 / out["tau_x"], 1000.0 / out["tau_y"]
    out["index"] = index
    return out


def _neuron_arrays(neuron: LIF, dt_ms: float) -> dict[str, Any]:
    tau = np.array([neuron.tau_ms[r] for r in RECEPTORS])[:, None]
    values = {
        "C": neuron.C_pF,
        "g_L": neuron.g_leak_nS,
        "E_L": neuron.E_leak_mV,
        "V_th": neuron.V_th_mV,
        "V_reset": neuron.V_reset_mV,
        "ref_steps": np.round(neuron.t_ref_ms / dt_ms),
        "I_bias": neuron.I_bias_pA,
        "E_rev": np.array([neuron.E_rev_mV[r] for r in RECEPTORS])[:, None],
        "decay": np.exp(-dt_ms / tau),
        "avg_factor": -np.expm1(-dt_ms / tau) / (dt_ms / tau),  # mean of e^{-s/τ} over a step (averaged)
        "mg": neuron.mg_mM,
        "adapt_b": neuron.adapt_b_nS,
        "adapt_E": neuron.adapt_E_mV,
        "adapt_decay": np.exp(-dt_ms / neuron.adapt_tau_ms),
        "adapt_avg_factor": -np.expm1(-dt_ms / neuron.adapt_tau_ms) / (dt_ms / neuron.adapt_tau_ms),
        "noise_scale": neuron.noise_mV * np.sqrt(-np.expm1(-2 * dt_ms / neuron.tau_m_ms)),
        "g_T": neuron.g_T_nS,
        "E_T": neuron.E_T_mV,
        "V_h": neuron.V_h_mV,
        "h_decay_minus": np.exp(-dt_ms / neuron.tau_h_minus_ms),
        "h_decay_plus": np.exp(-dt_ms / neuron.tau_h_plus_ms),
        "h0": neuron.h_init,
        "V0_mean": neuron.initial_mean_mV,
        "V0_sd": neuron.V_init_sd_mV,
        "cuba": float(neuron.current_based),
    }
    if neuron.current_based:  # currents: signed, no Mg²⁺ block, integrated exactly over the step
        values["E_rev"] = np.array([CURRENT_SIGN[r] for r in RECEPTORS])[:, None]
        values["mg"] = 0.0
        values["avg_factor"] = exact_current_factor(dt_ms, neuron.tau_m_ms, tau)
    return values


def exact_current_factor(dt_ms: float, tau_m_ms: float, tau_syn_ms: np.ndarray) -> np.ndarray:
    """κ such that holding κ·I(t) over a step of the membrane update V ← V∞ + (V − V∞)·e^{−dt/τ_m} gives
    the exact response to a current I(t)·e^{−s/τ_syn} decaying within the step (NEST's iaf_psc_exp
    propagator): κ = E/(1 − E)·(dt/τ_m)·φ(dt·(1/τ_syn − 1/τ_m)), E = e^{−dt/τ_m}, φ(x) = (1 − e^{−x})/x."""
    e_m = np.exp(-dt_ms / tau_m_ms)
    x = dt_ms * (1.0 / np.asarray(tau_syn_ms, dtype=float) - 1.0 / tau_m_ms)
    safe = np.where(np.abs(x) < 1e-12, 1.0, x)
    phi = np.where(np.abs(x) < 1e-12, 1.0 - x / 2, -np.expm1(-safe) / safe)
    return e_m / -np.expm1(-dt_ms / tau_m_ms) * (dt_ms / tau_m_ms) * phi

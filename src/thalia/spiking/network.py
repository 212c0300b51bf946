"""The flat network description: populations and projections, compiled to arrays for the engines.

Regions (thalamus, cortex) add populations and projections to one :class:`Network`; one engine
steps the whole description (DESIGN principle 3). Nothing here is region-specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thalia.spiking.connectivity import sample_weights
from thalia.spiking.neurons import LIF, RECEPTORS
from thalia.spiking.plasticity import BCM, STDP


@dataclass(frozen=True)
class Population:
    """``n`` neurons of one model; a spike source (``source`` set) emits given or Poisson spikes."""

    name: str
    n: int
    neuron: LIF
    offset: int  # first global index
    source: SpikeSource | None = None


@dataclass(frozen=True)
class SpikeSource:
    """Spikes at given times (``times_ms[i]``: the times of neuron i) and/or Poisson at ``rate_hz``."""

    times_ms: tuple = ()
    rate_hz: float = 0.0


@dataclass(frozen=True)
class Projection:
    """Synapses pre → post on one receptor with one axonal delay (ms)."""

    name: str
    pre: str
    post: str
    receptor: str
    delay_ms: float
    pre_idx: np.ndarray  # local indices in ``pre``
    post_idx: np.ndarray  # local indices in ``post``
    weight_nS: np.ndarray
    plasticity: STDP | BCM | None = None


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
        population = Population(
            name, population.n, population.neuron, population.offset, SpikeSource(tuple(times), rate_hz)
        )
        self.populations[name] = population
        return population

    def connect(
        self,
        pre: str,
        post: str,
        rule: Any,
        *,
        weight_nS: Any,
        receptor: str = "ampa",
        delay_ms: float = 1.0,
        rng: np.random.Generator | int | None = 0,
        name: str | None = None,
        plasticity: STDP | BCM | None = None,
    ) -> Projection:
        """Add a projection built by a connectivity ``rule`` (see :mod:`thalia.spiking.connectivity`)."""
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
        if not np.isfinite(delay_ms) or delay_ms <= 0:
            raise ValueError(
                f"Invalid value for 'delay_ms' of projection {label!r}: expected > 0 ms, got {delay_ms!r}."
            )
        if plasticity is not None and not isinstance(plasticity, STDP | BCM):
            raise ValueError(
                f"Invalid value for 'plasticity' of projection {label!r}: expected STDP(...), BCM(...) or None, "
                f"got {plasticity!r}."
            )
        if any(p.name == label for p in self.projections):
            raise ValueError(f"Invalid value for 'name': a projection {label!r} exists already.")
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        a, b = self.populations[pre], self.populations[post]
        pre_idx, post_idx = rule.build(a.n, b.n, pre == post, generator)
        weights = sample_weights(weight_nS, generator, len(pre_idx))
        projection = Projection(label, pre, post, receptor, float(delay_ms), pre_idx, post_idx, weights, plasticity)
        self.projections.append(projection)
        return projection


@dataclass(frozen=True)
class Compiled:
    """The network as flat arrays (global neuron indices; synapses sorted by source).

    Per neuron: C, g_L, E_L, V_th, V_reset, ref_steps, I_bias, E_rev (R, N), decay (R, N),
    mg, adapt_b, adapt_E, adapt_decay, noise_scale, V0 mean/sd. Per synapse: post, weight, delay
    (steps), receptor; ``indptr`` (N + 1) over sources. ``n_slots`` = longest delay + 1.
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

    def projection_weights(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Per projection, the weights (compiled order in) in the projection's own synapse order."""
        original = np.empty_like(weights)
        original[self.syn_original] = weights
        return {name: original[a:b] for name, (a, b) in self.projection_ranges.items()}


def delay_steps(delay_ms: float, dt_ms: float, name: str) -> int:
    steps = delay_ms / dt_ms
    rounded = int(round(steps))
    if rounded < 1 or abs(steps - rounded) > 1e-6 * max(1.0, steps):
        raise ValueError(
            f"Invalid value for 'delay_ms' of projection {name!r}: expected a multiple of dt = {dt_ms} ms "
            f"of at least one step, got {delay_ms} ms."
        )
    return rounded


def compile_network(network: Network, dt_ms: float) -> Compiled:
    """Flatten ``network`` at time step ``dt_ms``."""
    if not network.populations:
        raise ValueError("Invalid value for 'network': it has no populations.")
    n = network.n_neurons
    per_neuron: dict[str, list] = {}
    for pop in network.populations.values():
        values = _neuron_arrays(pop.neuron, dt_ms)
        values["V_th"] = np.inf if pop.source is not None else values["V_th"]  # sources never fire by themselves
        values["poisson_p"] = 0.0 if pop.source is None else -np.expm1(-pop.source.rate_hz * dt_ms / 1000.0)
        for key, value in values.items():
            per_neuron.setdefault(key, []).append(np.broadcast_to(value, (*np.shape(value)[:-1], pop.n)))
    params = {k: np.concatenate(v, axis=-1).astype(np.float64) for k, v in per_neuron.items()}
    params["ref_steps"] = params["ref_steps"].astype(np.int64)
    pre, post, weight, delay, receptor = [], [], [], [], []
    for proj in network.projections:
        a, b = network.populations[proj.pre], network.populations[proj.post]
        pre.append(proj.pre_idx + a.offset)
        post.append(proj.post_idx + b.offset)
        weight.append(proj.weight_nS)
        delay.append(np.full(len(proj.pre_idx), delay_steps(proj.delay_ms, dt_ms, proj.name)))
        receptor.append(np.full(len(proj.pre_idx), RECEPTORS.index(proj.receptor)))

    def cat(xs, dtype):
        return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)

    pre, post = cat(pre, np.int64), cat(post, np.int64)
    weight, delay, receptor = cat(weight, np.float64), cat(delay, np.int64), cat(receptor, np.int64)
    order = np.argsort(pre, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    slices = {p.name: slice(p.offset, p.offset + p.n) for p in network.populations.values()}
    bounds = np.cumsum([0] + [len(p.pre_idx) for p in network.projections])
    ranges = {p.name: (int(bounds[k]), int(bounds[k + 1])) for k, p in enumerate(network.projections)}
    plastic = _plastic_arrays(network.projections, bounds, order, dt_ms)
    schedule = _schedule(network, dt_ms)
    if plastic is not None:
        plastic["pre"], plastic["post"] = pre[order][plastic["index"]], post[order][plastic["index"]]
    return Compiled(
        dt_ms, params, indptr, post[order], weight[order], delay[order], receptor[order],
        int(delay.max(initial=0)) + 1, slices, order, ranges, plastic, schedule,
    )  # fmt: skip


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
    """Per plastic synapse (compiled order): rule (1 STDP, 2 BCM) and its parameters."""
    rows = []
    for k, proj in enumerate(projections):
        rule = proj.plasticity
        if rule is None:
            continue
        n = len(proj.pre_idx)
        if isinstance(rule, STDP):
            values = (1, rule.A_plus_nS, rule.A_minus_nS, rule.tau_plus_ms, rule.tau_minus_ms, 0.0, 1.0)
        else:
            values = (2, rule.eta, 0.0, rule.tau_pre_ms, rule.tau_post_ms, rule.tau_theta_ms, rule.target_hz)
        rows.append((np.arange(bounds[k], bounds[k] + n), (*values, rule.w_min_nS, rule.w_max_nS)))
    if not rows:
        return None
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))  # compiled position of each original synapse
    index = np.concatenate([where[r[0]] for r in rows])
    keys = ("rule", "a", "b", "tau_x", "tau_y", "tau_theta", "target", "w_min", "w_max")
    out = {key: np.concatenate([np.full(len(r[0]), r[1][i], dtype=float) for r in rows]) for i, key in enumerate(keys)}
    out["decay_x"], out["decay_y"] = np.exp(-dt_ms / out["tau_x"]), np.exp(-dt_ms / out["tau_y"])
    out["index"] = index
    return out


def _neuron_arrays(neuron: LIF, dt_ms: float) -> dict[str, Any]:
    tau = np.array([neuron.tau_ms[r] for r in RECEPTORS])[:, None]
    return {
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
    }

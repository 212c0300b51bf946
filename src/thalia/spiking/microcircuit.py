"""The Potjans & Diesmann (2014) cortical microcircuit as a preset of the spiking engine.

Potjans TC, Diesmann M (2014) The cell-type specific cortical microcircuit: relating structure and
activity in a full-scale spiking network model. Cereb Cortex 24:785–806. The network under 1 mm² of
early sensory cortex: 77,169 current-based LIF neurons in eight populations (L2/3, L4, L5, L6 ×
excitatory / inhibitory), ~0.3 billion synapses, external Poisson input, an optional thalamic
population of 902 neurons. Parameters (their Tables 4–5, as in NEST's PyNEST ``microcircuit`` model):

* neurons: iaf_psc_exp — C 250 pF, τ_m 10 ms (g_L 25 nS), E_L −65, V_th −50, V_reset −65 mV,
  t_ref 2 ms; exponential current synapses, τ_syn 0.5 ms (``LIF(synapse="current")``, integrated
  exactly as NEST does); initial V ~ N(−58, 10) mV (``v0="original"``, the 2014 paper) or the
  population-specific N(μ, σ) of the later NEST model (``v0="optimized"``);
* connectivity: :data:`CONNECTION_PROBABILITIES` C (target × source); each pair gets
  N_syn = ln(1 − C) / ln(1 − 1/(N_pre·N_post)) synapses with source and target drawn uniformly
  (``FixedTotalNumber``: multapses and autapses allowed), i.e. mean in-degree K = N_syn / N_post;
* weights: 87.8 pA (the current whose PSP peaks at 0.15 mV, :func:`psc_per_psp`), inhibitory g = 4
  times larger, L4e → L2/3e doubled; per synapse N(w, 0.1·w) redrawn below 0;
* delays: per synapse N(1.5, 0.75) ms from excitatory and N(0.75, 0.375) ms from inhibitory sources,
  redrawn below ``min_delay_ms`` (NEST: the resolution, 0.1 ms) and rounded to the nearest step;
* external input: K_ext Poisson inputs of 8 Hz per neuron (:data:`EXTERNAL_IN_DEGREES`), one Poisson
  drive of rate K_ext·8 Hz and weight 87.8 pA per neuron (``external="poisson"``), or the equal mean
  current as a DC (``external="dc"``: I = K_ext·8 Hz·87.8 pA·τ_syn);
* thalamus (``thalamus=True``): 902 spike sources (Poisson at ``thalamic_rate_hz``, and
  ``Simulator.run(inputs={"TC": ...})``) onto L4e, L4i, L6e, L6i with :data:`THALAMIC_PROBABILITIES`.

Scaling (``scale`` < 1): neuron numbers × scale, in-degrees kept (synapse numbers × scale).
``k_scale`` < 1 also scales the in-degrees (external ones included), with weights × 1/√k_scale (the
input variance K·w²·ν is kept) and the DC compensation of van Albada, Helias & Diesmann (2015, PLoS
Comput Biol 11:e1004490) for the mean: each population gets I = τ_syn·Σ_x (1 − √k)·K_yx·w_yx·ν_x (ν:
:data:`REFERENCE_RATES_HZ`, the full-scale rates; the external Poisson input counts as a source of
K_ext inputs at 8 Hz). Rates match the full model at scale ≥ 0.3 with k_scale 1, and at scale 0.1 with
k_scale 0.5; at scale 0.1, k_scale 1 (shared, repeated inputs) is too fast and k_scale 0.1 (large
PSPs) too slow in L2/3 (docs/microcircuit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thalia._validation import check_option
from thalia.spiking.connectivity import FixedTotalNumber, TruncatedNormal
from thalia.spiking.network import Network
from thalia.spiking.neurons import LIF

POPULATIONS = ("L23e", "L23i", "L4e", "L4i", "L5e", "L5i", "L6e", "L6i")
#: Neurons per population at full scale (Potjans & Diesmann 2014, Table 5).
FULL_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)
#: Connection probabilities, rows = target, columns = source, in the order of POPULATIONS (Table 5).
CONNECTION_PROBABILITIES = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443],
])  # fmt: skip
#: External (cortico-cortical) Poisson inputs per neuron, K_ext (Table 5).
EXTERNAL_IN_DEGREES = (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)
N_THALAMUS = 902
#: Thalamus → population connection probabilities (Table 5; zero onto L2/3 and L5).
THALAMIC_PROBABILITIES = (0.0, 0.0, 0.0983, 0.0619, 0.0, 0.0, 0.0512, 0.0196)
#: Mean rates (Hz) of the full-scale model: NEST's reference values (the ``full_mean_rates`` of the
#: PyNEST microcircuit model, from van Albada et al. 2015), used by the DC compensation of k_scale.
REFERENCE_RATES_HZ = dict(zip(POPULATIONS, (0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829), strict=True))
#: Population-specific initial potentials (mean, sd mV) of the later NEST model (``v0="optimized"``).
OPTIMIZED_V0_MV = dict(zip(POPULATIONS, (
    (-68.28, 5.36), (-63.16, 4.57), (-63.33, 4.74), (-63.45, 4.94), (-63.11, 4.94), (-61.66, 4.55),
    (-66.72, 5.46), (-61.43, 4.48),
), strict=True))  # fmt: skip
EXTERNAL_MODES = ("poisson", "dc")
V0_MODES = ("original", "optimized")


@dataclass(frozen=True)
class MicrocircuitConfig:
    """Parameters of the microcircuit (defaults: the published model; see the module docstring).

    Rates in Hz, potentials in mV, times in ms, currents in pA, capacitance in pF.
    """

    scale: float = 1.0
    k_scale: float = 1.0
    external: str = "poisson"
    background_rate_hz: float = 8.0
    psp_mV: float = 0.15
    g: float = 4.0
    l4e_to_l23e_factor: float = 2.0
    weight_rel_sd: float = 0.1
    delay_exc_mean_ms: float = 1.5
    delay_inh_mean_ms: float = 0.75
    delay_rel_sd: float = 0.5
    min_delay_ms: float = 0.1
    v0: str = "original"
    thalamus: bool = False
    thalamic_rate_hz: float = 0.0
    C_pF: float = 250.0
    tau_m_ms: float = 10.0
    tau_syn_ms: float = 0.5
    E_leak_mV: float = -65.0
    V_th_mV: float = -50.0
    V_reset_mV: float = -65.0
    t_ref_ms: float = 2.0

    def __post_init__(self) -> None:
        check_option("external", self.external, EXTERNAL_MODES)
        check_option("v0", self.v0, V0_MODES)
        for name in ("scale", "k_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not np.isfinite(value) or not 0 < value <= 1:
                raise ValueError(f"Invalid value for {name!r}: expected a number in (0, 1], got {value!r}.")
        for name in ("background_rate_hz", "psp_mV", "g", "l4e_to_l23e_factor", "weight_rel_sd", "delay_rel_sd",
                     "thalamic_rate_hz", "delay_exc_mean_ms", "delay_inh_mean_ms", "min_delay_ms"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise ValueError(f"Invalid value for {name!r}: expected a finite number >= 0, got {value!r}.")

    @property
    def sizes(self) -> dict[str, int]:
        """Neurons per population at this scale (at least 1)."""
        return {p: max(1, int(round(n * self.scale))) for p, n in zip(POPULATIONS, FULL_SIZES, strict=True)}

    @property
    def weight_pA(self) -> float:
        """The excitatory weight (pA) whose PSP peaks at ``psp_mV``, divided by √k_scale."""
        return self.psp_mV * psc_per_psp(self.C_pF, self.tau_m_ms, self.tau_syn_ms) / np.sqrt(self.k_scale)


def psc_per_psp(C_pF: float, tau_m_ms: float, tau_syn_ms: float) -> float:
    """Current jump (pA) of an exponential synapse per mV of PSP peak in a LIF membrane.

    The PSP of a jump w is V(t) = w·τ_m·τ_s / (C·(τ_m − τ_s))·(e^{−t/τ_m} − e^{−t/τ_s}), which peaks at
    t* = τ_m·τ_s·ln(τ_m/τ_s) / (τ_m − τ_s); the result is 1 / V(t*) for w = 1 pA (585.4 pA/mV for the
    model's 250 pF, 10 ms, 0.5 ms).
    """
    t_peak = tau_m_ms * tau_syn_ms * np.log(tau_m_ms / tau_syn_ms) / (tau_m_ms - tau_syn_ms)
    shape = np.exp(-t_peak / tau_m_ms) - np.exp(-t_peak / tau_syn_ms)
    return float(C_pF * (tau_m_ms - tau_syn_ms) / (tau_m_ms * tau_syn_ms * shape))


def full_synapse_numbers(probabilities: np.ndarray, n_pre, n_post) -> np.ndarray:
    """N_syn = ln(1 − C) / ln(1 − 1/(N_pre·N_post)) per (target, source) at full scale: the number of
    uniformly drawn synapses that connects a given pair with probability C (Potjans & Diesmann, eq. 1)."""
    pairs = np.outer(np.asarray(n_post, dtype=float), np.asarray(n_pre, dtype=float))
    return np.log1p(-np.asarray(probabilities, dtype=float)) / np.log1p(-1.0 / pairs)


def in_degrees(config: MicrocircuitConfig | None = None) -> np.ndarray:
    """Mean in-degrees K (target × source) of the model at ``config``'s k_scale (independent of scale)."""
    config = MicrocircuitConfig() if config is None else config
    full = full_synapse_numbers(CONNECTION_PROBABILITIES, FULL_SIZES, FULL_SIZES)
    return full / np.asarray(FULL_SIZES, dtype=float)[:, None] * config.k_scale


def synapse_numbers(config: MicrocircuitConfig) -> np.ndarray:
    """Synapses per (target, source) at ``config``'s scale: round(N_syn,full · scale · k_scale)."""
    full = full_synapse_numbers(CONNECTION_PROBABILITIES, FULL_SIZES, FULL_SIZES)
    return np.round(full * config.scale * config.k_scale).astype(np.int64)


def weights_pA(config: MicrocircuitConfig) -> np.ndarray:
    """Mean weight magnitudes (pA, target × source): w for excitatory, g·w for inhibitory sources,
    2w for L4e → L2/3e (the sign comes from the receptor: AMPA +, GABA-A −)."""
    w = np.full((8, 8), config.weight_pA)
    w[:, 1::2] *= config.g
    w[0, 2] *= config.l4e_to_l23e_factor
    return w


def dc_input_pA(config: MicrocircuitConfig) -> np.ndarray:
    """DC (pA) per population: the mean external current when ``external="dc"``, plus the van Albada
    et al. (2015) compensation of the input lost by k_scale < 1 (zero at k_scale = 1)."""
    tau_s = config.tau_syn_ms / 1000.0
    k_ext_full = np.asarray(EXTERNAL_IN_DEGREES, dtype=float)
    w_full = weights_pA(config) * np.sqrt(config.k_scale)  # unscaled weights
    sign = np.tile([1.0, -1.0], 4)
    rates = np.array([REFERENCE_RATES_HZ[p] for p in POPULATIONS])
    lost = 1.0 - np.sqrt(config.k_scale)
    recurrent = tau_s * lost * (in_degrees(MicrocircuitConfig()) * w_full * sign * rates).sum(axis=1)
    external_mean = tau_s * k_ext_full * w_full[0, 0] * config.background_rate_hz  # at full scale
    if config.external == "dc":
        return external_mean + recurrent
    return lost * external_mean + recurrent


def neuron(config: MicrocircuitConfig, population: str, I_bias_pA: float = 0.0) -> LIF:
    """The current-based LIF of one population (initial potentials per ``config.v0``)."""
    mean, sd = (-58.0, 10.0) if config.v0 == "original" else OPTIMIZED_V0_MV[population]
    return LIF(
        C_pF=config.C_pF, g_leak_nS=config.C_pF / config.tau_m_ms, E_leak_mV=config.E_leak_mV,
        V_th_mV=config.V_th_mV, V_reset_mV=config.V_reset_mV, t_ref_ms=config.t_ref_ms, I_bias_pA=float(I_bias_pA),
        tau_ms={"ampa": config.tau_syn_ms, "gaba_a": config.tau_syn_ms}, V_init_mV=mean, V_init_sd_mV=sd,
        synapse="current",
    )  # fmt: skip


def add_microcircuit(
    net: Network, config: MicrocircuitConfig, rng: np.random.Generator, names: dict[str, str] | None = None
) -> dict[str, str]:
    """Add the microcircuit's populations, projections and external input to ``net``; returns the map
    model population (``"L23e"``, …, ``"TC"``) → population name in ``net`` (``names``, default the same)."""
    names = {p: p for p in (*POPULATIONS, "TC")} | dict(names or {})
    sizes, dc = config.sizes, dc_input_pA(config)
    for k, pop in enumerate(POPULATIONS):
        net.add_population(names[pop], sizes[pop], neuron(config, pop, dc[k]))
        if config.external == "poisson":
            k_ext = round(EXTERNAL_IN_DEGREES[k] * config.k_scale)
            net.add_poisson_drive(names[pop], k_ext * config.background_rate_hz, config.weight_pA, "ampa")
    counts, weights = synapse_numbers(config), weights_pA(config)
    for j, pre in enumerate(POPULATIONS):
        inhibitory = j % 2 == 1
        delay = _delay(config, config.delay_inh_mean_ms if inhibitory else config.delay_exc_mean_ms)
        receptor = "gaba_a" if inhibitory else "ampa"
        for i, post in enumerate(POPULATIONS):
            if counts[i, j] == 0:
                continue
            w = TruncatedNormal(weights[i, j], config.weight_rel_sd * weights[i, j], low=0.0)
            net.connect(
                names[pre], names[post], FixedTotalNumber(int(counts[i, j])), weight_nS=w,
                receptor=receptor, delay_ms=delay, rng=rng, name=f"{names[pre]}->{names[post]}",
            )  # fmt: skip
    if config.thalamus:
        _add_thalamus(net, config, rng, names)
    return names


def _delay(config: MicrocircuitConfig, mean_ms: float) -> TruncatedNormal:
    return TruncatedNormal(mean_ms, config.delay_rel_sd * mean_ms, low=config.min_delay_ms)


def thalamic_synapse_numbers(config: MicrocircuitConfig) -> np.ndarray:
    """Thalamic synapses onto each population at ``config``'s scale (zero onto L2/3 and L5)."""
    full = full_synapse_numbers(np.asarray(THALAMIC_PROBABILITIES)[:, None], [N_THALAMUS], FULL_SIZES)[:, 0]
    return np.round(full * config.scale * config.k_scale).astype(np.int64)


def _add_thalamus(net: Network, config: MicrocircuitConfig, rng: np.random.Generator, names: dict[str, str]) -> None:
    n_th = max(1, int(round(N_THALAMUS * config.scale)))
    net.add_spike_source(names["TC"], n_th, rate_hz=config.thalamic_rate_hz)
    w = TruncatedNormal(config.weight_pA, config.weight_rel_sd * config.weight_pA)
    for i, post in enumerate(POPULATIONS):
        count = int(thalamic_synapse_numbers(config)[i])
        if count:
            net.connect(
                names["TC"], names[post], FixedTotalNumber(count), weight_nS=w, receptor="ampa",
                delay_ms=_delay(config, config.delay_exc_mean_ms), rng=rng, name=f"{names['TC']}->{names[post]}",
            )  # fmt: skip


def potjans_diesmann(scale: float = 1.0, *, seed: int = 0, **options) -> Network:
    """The Potjans & Diesmann (2014) microcircuit as a :class:`Network` (populations ``"L23e"``,
    ``"L23i"``, …, ``"L6i"``, and ``"TC"`` with ``thalamus=True``); ``options`` are fields of
    :class:`MicrocircuitConfig` (``k_scale``, ``external``, ``v0``, ``thalamus``, …). Connectivity,
    weights and delays are drawn with NumPy's generator seeded by ``seed`` (vectorised: no loop over
    synapses). Simulate it at dt = 0.1 ms, as the original::

        net = potjans_diesmann(0.1)
        result = simulate(net, 1000.0, dt_ms=0.1, seed=1)
        result.rate_hz("L4e")
    """
    config = MicrocircuitConfig(scale=scale, **options)
    net = Network()
    add_microcircuit(net, config, np.random.default_rng(seed))
    return net


__all__ = [
    "POPULATIONS",
    "FULL_SIZES",
    "CONNECTION_PROBABILITIES",
    "EXTERNAL_IN_DEGREES",
    "THALAMIC_PROBABILITIES",
    "REFERENCE_RATES_HZ",
    "MicrocircuitConfig",
    "potjans_diesmann",
    "add_microcircuit",
    "psc_per_psp",
    "in_degrees",
    "synapse_numbers",
    "dc_input_pA",
    "spike_statistics",
]


def spike_statistics(result, populations=POPULATIONS, *, bin_ms: float = 3.0, sample: int = 1000) -> dict[str, dict]:
    """Per population: ``rates_hz`` (mean over neurons), ``cv_isi`` (mean CV of the inter-spike
    intervals over neurons with at least 3 spikes; NaN if none) and ``synchrony`` (variance / mean of
    the spike counts in ``bin_ms`` bins of the first ``sample`` neurons, as in Potjans & Diesmann 2014,
    Fig. 6: 1 for independent Poisson neurons, larger for synchronous activity)."""
    out: dict[str, dict] = {"rates_hz": {}, "cv_isi": {}, "synchrony": {}}
    for pop in populations:
        times, ids = result.spikes(pop)
        out["rates_hz"][pop] = result.rate_hz(pop)
        out["cv_isi"][pop] = _mean_cv(times, ids)
        keep = ids < sample
        edges = np.arange(0.0, result.duration_ms + bin_ms / 2, bin_ms)
        counts, _ = np.histogram(times[keep], edges)
        out["synchrony"][pop] = float(counts.var() / counts.mean()) if counts.mean() > 0 else float("nan")
    return out


def _mean_cv(times: np.ndarray, ids: np.ndarray) -> float:
    """Mean over neurons (≥ 3 spikes) of std/mean of their inter-spike intervals (vectorised)."""
    order = np.lexsort((times, ids))
    times, ids = times[order], ids[order]
    same = ids[1:] == ids[:-1]
    isi, owner = np.diff(times)[same], ids[1:][same]
    neurons, index, n = np.unique(owner, return_inverse=True, return_counts=True)
    mean = np.bincount(index, isi) / n
    var = np.bincount(index, isi**2) / n - mean**2
    ok = n >= 2
    return float(np.mean(np.sqrt(np.maximum(var[ok], 0.0)) / mean[ok])) if ok.any() else float("nan")

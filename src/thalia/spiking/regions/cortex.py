"""The layered cortex: L4, L2/3, L5, L6a and L6b, each with pyramidal (E) and fast-spiking (I) cells.

Within a column, thalamic input lands on L4 (E and I: feed-forward inhibition), higher-order thalamic
input (port ``higher_order``) on L6b (E and I); L4 → L2/3 → L5, and
L2/3 → L6a and L2/3 → L6b (the seed's vertical pathway). Every layer has local E → E, E → I, I → E and
I → I synapses (real inhibitory populations: no winner-take-all masks). Positions on the cortical
sheet are the neurons' indices mapped to [0, 1); vertical projections are topographic (columns), so a
column's L6 cells inherit the receptive field of the relay cells that drive it.

Every cortical neuron receives Poisson background input (``background_rate_hz`` in total, through
``background_in_degree`` synapses) standing for the rest of the cortex, as in Brunel (2000) and
Mazzoni et al. (2015).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from thalia.spiking.connectivity import Explicit, FixedInDegree, Topographic
from thalia.spiking.network import Network
from thalia.spiking.plasticity import BCM, STDP, STDPBCM
from thalia.spiking.regions import cells
from thalia.spiking.regions.base import Region

LAYERS = ("l4", "l23", "l5", "l6a", "l6b")
LAYER_LABELS = {"l4": "L4", "l23": "L2/3", "l5": "L5", "l6a": "L6a", "l6b": "L6b"}
BACKGROUND_SOURCES = 200


@dataclass(frozen=True)
class CortexConfig:
    """Layer sizes relative to ``n_output`` (= the L2/3 pyramidal population), synapses, delays.

    Weights are peak conductances (nS) per synapse; in-degrees are synapses per target neuron;
    ``*_sigma`` are topographic widths as fractions of the sheet.
    """

    l4_ratio: float = 1.0
    l5_ratio: float = 0.5
    l6a_ratio: float = 0.25
    l6b_ratio: float = 0.25
    inhibitory_ratio: float = 0.25
    # thalamic (or other feed-forward) input onto L4 E and I
    input_in_degree: int = 20
    input_weight_nS: float = 3.8
    #: first-order thalamic input onto L6b E and I (0: L6b's thalamic input is the higher-order one)
    input_to_l6b_weight_nS: float = 0.0
    #: higher-order thalamic input (port ``higher_order``, ``input_in_degree`` synapses) onto L6b E and
    #: I: POm axons reach the deep layers, L6 (Crandall, Patrick, Cruikshank & Connors 2017, Cell Rep
    #: 21:3065) and L5 (Mease, Metz & Groh 2016, Cell Rep 14:208); here the L6b cells, which close
    #: the higher-order loop (same weight as the seed's thalamic input to L6b)
    ho_input_to_l6b_weight_nS: float = 4.4
    column_sigma: float = 0.05
    # vertical pathway
    vertical_in_degree: int = 20
    l4_to_l23_weight_nS: float = 4.3
    l23_to_l5_weight_nS: float = 4.3
    l23_to_l6a_weight_nS: float = 5.9
    l23_to_l6b_weight_nS: float = 0.5
    vertical_delay_ms: float = 1.0
    # local circuit of every layer
    recurrent_in_degree: int = 10
    recurrent_weight_nS: float = 2.2
    e_to_i_in_degree: int = 20
    e_to_i_weight_nS: float = 1.5
    i_to_e_in_degree: int = 20
    i_to_e_weight_nS: float = 4.6
    i_to_i_in_degree: int = 10
    i_to_i_weight_nS: float = 3.0
    local_delay_ms: float = 1.0
    #: GABA-A decay (ms) onto pyramidal cells and onto interneurons (Bartos et al. 2007)
    gaba_a_tau_e_ms: float = 6.0
    gaba_a_tau_i_ms: float = 4.0
    #: NMDA peak conductance (nS) added to every local E → I synapse (0: AMPA only)
    e_to_i_nmda_weight_nS: float = 0.0
    # background and top-down (attention) input
    background_rate_hz: float = 1070.0
    background_in_degree: int = 50
    background_weight_nS: float = 1.0
    attention_in_degree: int = 20
    attention_weight_nS: float = 3.0
    noise_mV: float = 2.0
    plasticity: bool = False


class Cortex(Region):
    """Layered cortex builder (kind ``"cortex"``)."""

    kind: ClassVar[str] = "cortex"
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {
        "l4": ("l4_e",),
        "l23": ("l23_e",),
        "l5": ("l5_e",),
        "l6a": ("l6a_e",),
        "l6b": ("l6b_e",),
        "l6": ("l6a_e", "l6b_e"),
    }
    default_source_port: ClassVar[str] = "l23"
    target_ports: ClassVar[tuple[str, ...]] = ("feedforward", "attention", "higher_order")
    thalamic_ports: ClassVar[dict[str, tuple[str, ...]]] = {
        "l6a_e": ("l6a_feedback",), "l6b_e": ("l6b_feedback",),
    }  # fmt: skip

    def __post_init__(self) -> None:
        c, n = self.config, self.n_output
        ratios = {"l4": c.l4_ratio, "l23": 1.0, "l5": c.l5_ratio, "l6a": c.l6a_ratio, "l6b": c.l6b_ratio}
        for layer, ratio in ratios.items():
            n_e = max(1, int(round(ratio * n)))
            self.sizes[f"{layer}_e"] = n_e
            self.sizes[f"{layer}_i"] = max(2, int(round(c.inhibitory_ratio * n_e)))

    def _set_last(self, last: dict[str, torch.Tensor]) -> None:
        super()._set_last(last)
        self.state.l6_spikes = torch.cat([self.state.l6a_spikes, self.state.l6b_spikes])

    def get_layer_outputs(self) -> dict[str, torch.Tensor]:
        """Pyramidal spikes of the last step per layer: ``"L4"``, ``"L2/3"``, ``"L5"``, ``"L6a"``,
        ``"L6b"`` and ``"L6"`` (L6a ‖ L6b)."""
        out = {LAYER_LABELS[layer]: getattr(self.state, f"{layer}_spikes") for layer in LAYERS}
        out["L6"] = self.state.l6_spikes
        return out

    def get_l6_spikes(self) -> torch.Tensor:
        """L6a ‖ L6b pyramidal spikes of the last step."""
        return self.state.l6_spikes

    def input_targets(self, port: str) -> list[tuple[str, int, float, float]]:
        """(population, in-degree, weight nS, topographic sigma) of each synapse group of a target port:
        ``feedforward`` (thalamic input) onto L4 and L6b, E and I; ``higher_order`` (higher-order
        thalamic input) onto L6b E and I; ``attention`` onto L6a and L6b E."""
        c = self.config
        if port == "feedforward":
            return [
                (self.population(role), c.input_in_degree, w, c.column_sigma)
                for role, w in (
                    ("l4_e", c.input_weight_nS), ("l4_i", c.input_weight_nS),
                    ("l6b_e", c.input_to_l6b_weight_nS), ("l6b_i", c.input_to_l6b_weight_nS),
                )
            ]  # fmt: skip
        if port == "higher_order":
            return [
                (self.population(role), c.input_in_degree, c.ho_input_to_l6b_weight_nS, c.column_sigma)
                for role in ("l6b_e", "l6b_i")
            ]
        if port == "attention":
            return [
                (self.population(role), c.attention_in_degree, c.attention_weight_nS, c.column_sigma)
                for role in ("l6a_e", "l6b_e")
            ]
        return super().input_targets(port)

    def layer_population(self, layer: str, kind: str = "e") -> str:
        return self.population(f"{layer}_{kind}")

    def build(self, net: Network, rng: np.random.Generator) -> None:
        c = self.config
        for role, n in self.sizes.items():
            if role.endswith("_e"):
                neuron = cells.pyramidal(c.noise_mV, c.gaba_a_tau_e_ms)
            else:
                neuron = cells.interneuron(c.noise_mV, c.gaba_a_tau_i_ms)
            net.add_population(self.population(role), n, neuron)
        background = self.population("background")
        rate = c.background_rate_hz / max(c.background_in_degree, 1)
        net.add_spike_source(background, BACKGROUND_SOURCES, rate_hz=rate)
        for layer in LAYERS:
            self._local_circuit(net, layer, rng)
        plastic = c.plasticity
        for pre, post, w in (
            ("l4", "l23", c.l4_to_l23_weight_nS),
            ("l23", "l5", c.l23_to_l5_weight_nS),
            ("l23", "l6a", c.l23_to_l6a_weight_nS),
            ("l23", "l6b", c.l23_to_l6b_weight_nS),
        ):
            for kind in "ei":
                self._connect(
                    net, self.layer_population(pre), self.layer_population(post, kind),
                    Topographic(min(c.vertical_in_degree, self.sizes[f"{pre}_e"]), c.column_sigma), w,
                    "ampa", c.vertical_delay_ms, rng, plastic and kind == "e",
                )  # fmt: skip

    def _local_circuit(self, net: Network, layer: str, rng: np.random.Generator) -> None:
        c = self.config
        e, i = self.layer_population(layer, "e"), self.layer_population(layer, "i")
        n_e, n_i = self.sizes[f"{layer}_e"], self.sizes[f"{layer}_i"]
        background = self.population("background")
        for post in (e, i):
            k_bg = min(c.background_in_degree, BACKGROUND_SOURCES)
            if k_bg and c.background_weight_nS > 0:
                self._connect(net, background, post, FixedInDegree(k_bg), c.background_weight_nS, "ampa", 1.0, rng)
        table = (
            (e, e, c.recurrent_in_degree, n_e - 1, c.recurrent_weight_nS, "ampa"),
            (e, i, c.e_to_i_in_degree, n_e, c.e_to_i_weight_nS, "ampa"),
            (i, e, c.i_to_e_in_degree, n_i, c.i_to_e_weight_nS, "gaba_a"),
            (i, i, c.i_to_i_in_degree, n_i - 1, c.i_to_i_weight_nS, "gaba_a"),
        )
        for pre, post, k, pool, w, receptor in table:
            k = min(k, pool)
            if k > 0 and w > 0:
                plastic = self.config.plasticity and pre == e and post == e
                self._connect(net, pre, post, FixedInDegree(k), w, receptor, c.local_delay_ms, rng, plastic)
        e_to_i = next((p for p in net.projections if p.name == f"{e}->{i}:ampa"), None)
        if e_to_i is not None and c.e_to_i_nmda_weight_nS > 0:  # NMDA at the same synapses as the AMPA
            rule = Explicit(e_to_i.pre_idx, e_to_i.post_idx)
            self._connect(net, e, i, rule, c.e_to_i_nmda_weight_nS, "nmda", c.local_delay_ms, rng)

    def _connect(self, net, pre, post, rule, w, receptor, delay_ms, rng, plastic=False) -> None:
        plasticity = cortical_plasticity(w) if plastic else None
        net.connect(pre, post, rule, weight_nS=w, receptor=receptor, delay_ms=delay_ms, rng=rng,
                    name=f"{pre}->{post}:{receptor}", plasticity=plasticity)  # fmt: skip


def cortical_plasticity(w_nS: float) -> STDPBCM:
    """Plasticity of cortical excitatory synapses when ``plasticity=True``: the STDP + BCM composite
    (:class:`~thalia.spiking.plasticity.STDPBCM`), weights bounded in [0, 2w].

    * STDP: pair-based, τ± 20 ms, A₊ = 1 % of w and A₋ slightly larger (Song, Miller & Abbott 2000);
    * BCM: the same 20 ms traces read as rates, a sliding threshold θ → ⟨y²⟩/5 Hz with τ_θ 5 s (the
      original thalia's 5,000 ms), η = 10⁻⁵·w per Hz³·s, so a cell firing 5 Hz above its threshold
      with 10 Hz inputs changes w by ~0.5 %/s (Bienenstock, Cooper & Munro 1982).
    """
    stdp = STDP(A_plus_nS=0.01 * w_nS, A_minus_nS=0.0105 * w_nS, w_min_nS=0.0, w_max_nS=2.0 * w_nS)
    bcm = BCM(eta=1e-5 * w_nS, tau_pre_ms=20.0, tau_post_ms=20.0, tau_theta_ms=5000.0, target_hz=5.0,
              w_min_nS=0.0, w_max_nS=2.0 * w_nS)  # fmt: skip
    return STDPBCM(stdp, bcm)


__all__ = ["Cortex", "CortexConfig", "LAYERS", "LAYER_LABELS"]

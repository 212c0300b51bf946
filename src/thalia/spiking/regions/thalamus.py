"""The thalamus: relay (thalamocortical) cells and the reticular nucleus (TRN).

Both are integrate-and-fire-or-burst neurons (Smith et al. 2000): a T-type Ca²⁺ current gives
rebound bursts after hyperpolarisation (by TRN inhibition) and tonic firing when depolarised.
Synapses (all topographic on the relay map, positions = indices mapped to [0, 1)):

* sensory input → relay (AMPA) and, as collaterals, → TRN;
* relay → TRN (AMPA), TRN → relay (GABA-A, optional GABA-B), TRN → TRN (GABA-A);
* target port ``l6a_feedback``: cortical L6a → TRN (AMPA) and, monosynaptically, → relay (AMPA):
  L6 corticothalamic cells excite relay cells directly and inhibit them through the TRN (Crandall,
  Cruikshank & Connors 2015, Neuron 86:768). The TRN's inhibition reaches wider (L6a → TRN, then
  TRN → relay) than the direct excitation, so L6a feedback is centre–surround on the relay map;
* target port ``l6b_feedback``: cortical L6b → relay (AMPA) — the direct excitatory loop.

The TRN has ``trn_ratio`` × the relay cells (0.5 by default, as the seed says).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from thalia.spiking.connectivity import Explicit, Topographic
from thalia.spiking.network import Network
from thalia.spiking.regions import cells
from thalia.spiking.regions.base import Region


@dataclass(frozen=True)
class ThalamusConfig:
    """TRN size, intrathalamic synapses (nS per synapse, in-degrees, delays) and cell noise."""

    trn_ratio: float = 0.5
    sensory_in_degree: int = 20
    sensory_weight_nS: float = 4.6
    sensory_sigma: float = 0.05
    sensory_to_trn_in_degree: int = 10
    relay_to_trn_in_degree: int = 20
    relay_to_trn_weight_nS: float = 1.6
    relay_to_trn_delay_ms: float = 1.0
    #: NMDA peak conductance (nS) added to every relay → TRN synapse (0: AMPA only)
    relay_to_trn_nmda_weight_nS: float = 0.0
    trn_to_relay_in_degree: int = 20
    trn_to_relay_weight_nS: float = 6.8
    trn_to_relay_gaba_b_weight_nS: float = 0.0
    trn_to_relay_delay_ms: float = 2.0
    trn_to_trn_in_degree: int = 10
    trn_to_trn_weight_nS: float = 2.0
    #: GABA-A decay (ms) of relay and TRN cells (TRN → relay and TRN → TRN)
    gaba_a_tau_ms: float = 8.0
    intrathalamic_sigma: float = 0.1
    l6a_in_degree: int = 20
    l6a_weight_nS: float = 8.0
    l6a_sigma: float = 0.1
    #: direct L6a → relay excitation (nS per synapse, ``l6a_in_degree`` synapses, width ``l6a_sigma``)
    l6a_to_relay_weight_nS: float = 8.0
    l6b_in_degree: int = 20
    l6b_weight_nS: float = 6.5
    l6b_sigma: float = 0.05
    relay_noise_mV: float = 2.0
    trn_noise_mV: float = 2.0
    relay_bias_pA: float = 0.0
    trn_bias_pA: float = 0.0


class Thalamus(Region):
    """Relay + TRN builder (kind ``"thalamus"``); ``n_output`` relay cells."""

    kind: ClassVar[str] = "thalamus"
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {"relay": ("relay",)}
    default_source_port: ClassVar[str] = "relay"
    target_ports: ClassVar[tuple[str, ...]] = ("sensory", "l6a_feedback", "l6b_feedback")

    def __post_init__(self) -> None:
        self.sizes["relay"] = self.n_output
        self.sizes["trn"] = max(1, int(round(self.config.trn_ratio * self.n_output)))

    def build(self, net: Network, rng: np.random.Generator) -> None:
        c = self.config
        relay, trn = self.population("relay"), self.population("trn")
        net.add_population(relay, self.sizes["relay"], cells.relay(c.relay_noise_mV, c.relay_bias_pA, c.gaba_a_tau_ms))
        net.add_population(trn, self.sizes["trn"], cells.reticular(c.trn_noise_mV, c.trn_bias_pA, c.gaba_a_tau_ms))
        sigma = c.intrathalamic_sigma
        table = (
            (relay, trn, c.relay_to_trn_in_degree, c.relay_to_trn_weight_nS, "ampa", c.relay_to_trn_delay_ms),
            (trn, relay, c.trn_to_relay_in_degree, c.trn_to_relay_weight_nS, "gaba_a", c.trn_to_relay_delay_ms),
            (trn, relay, c.trn_to_relay_in_degree, c.trn_to_relay_gaba_b_weight_nS, "gaba_b", c.trn_to_relay_delay_ms),
            (trn, trn, c.trn_to_trn_in_degree, c.trn_to_trn_weight_nS, "gaba_a", 1.0),
        )
        for pre, post, k, w, receptor, delay in table:
            pool = self.sizes[pre.rsplit(".", 1)[1]] - (pre == post)
            k = min(k, pool)
            if k > 0 and w > 0:
                net.connect(pre, post, Topographic(k, sigma), weight_nS=w, receptor=receptor, delay_ms=delay, rng=rng,
                            name=f"{pre}->{post}:{receptor}")  # fmt: skip
        relay_to_trn = next((p for p in net.projections if p.name == f"{relay}->{trn}:ampa"), None)
        if relay_to_trn is not None and c.relay_to_trn_nmda_weight_nS > 0:  # NMDA at the same synapses as the AMPA
            net.connect(relay, trn, Explicit(relay_to_trn.pre_idx, relay_to_trn.post_idx),
                        weight_nS=c.relay_to_trn_nmda_weight_nS, receptor="nmda", delay_ms=c.relay_to_trn_delay_ms,
                        rng=rng, name=f"{relay}->{trn}:nmda")  # fmt: skip

    def input_targets(self, port: str) -> list[tuple[str, int, float, float]]:
        """(population, in-degree, weight nS, topographic sigma) of each synapse group of a target port."""
        c = self.config
        if port == "sensory":
            return [
                (self.population("relay"), c.sensory_in_degree, c.sensory_weight_nS, c.sensory_sigma),
                (self.population("trn"), c.sensory_to_trn_in_degree, c.sensory_weight_nS, c.sensory_sigma),
            ]
        if port == "l6a_feedback":
            return [
                (self.population("trn"), c.l6a_in_degree, c.l6a_weight_nS, c.l6a_sigma),
                (self.population("relay"), c.l6a_in_degree, c.l6a_to_relay_weight_nS, c.l6a_sigma),
            ]
        if port == "l6b_feedback":
            return [(self.population("relay"), c.l6b_in_degree, c.l6b_weight_nS, c.l6b_sigma)]
        raise ValueError(
            f"Invalid value for 'target_port' of component {self.name!r} (thalamus): allowed "
            f"{list(self.target_ports)}, got {port!r}."
        )

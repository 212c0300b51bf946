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
* target port ``l6b_feedback``: cortical L6b → higher-order relay cells (AMPA) — the direct
  excitatory loop (onto the first-order relay cells when ``ho_ratio`` is 0, as in the seed).

**Higher-order nucleus.** With ``ho_ratio`` > 0 the thalamus also has higher-order (POm-like) relay
cells ``relay_ho`` (``ho_ratio`` × the relay cells) and their own TRN sector ``trn_ho`` (``trn_ratio``
× those). L6b corticothalamic cells project to higher-order nuclei (POm, LP; Hoerder-Suabedissen et
al. 2018, Cereb Cortex 28:1882), which need cortical drive (POm responses vanish when the barrel
cortex is silenced; Diamond et al. 1992, J Comp Neurol 319:66). First- and higher-order relay cells are
inhibited by different TRN cells: PV-rich TRN cells project to VPM/VPL, SST-rich TRN cells to POm
(Clemente-Perez et al. 2017, Cell Rep 19:2130; Martinez-Garcia et al. 2020, Nature 583:813), so
L6a's drive of the first-order sector (``trn``) reaches ``relay_ho`` only through
``trn_fo_to_ho_weight_nS`` (0 by default). The ``relay_ho`` ↔ ``trn_ho`` synapses have their own
weights and the first-order in-degrees and delays. ``relay_ho`` gets no sensory input; it projects (with the ``relay``
source port, on a default connection) to the ``higher_order`` port of a cortex.

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
    #: direct L6a → relay excitation (nS per synapse, ``l6a_in_degree`` synapses, width ``l6a_sigma``);
    #: 10 nS, about the L6a → TRN drive: the monosynaptic corticothalamic EPSCs on relay cells and on
    #: TRN cells are of similar size once facilitated (Crandall, Cruikshank & Connors 2015)
    l6a_to_relay_weight_nS: float = 10.0
    l6b_in_degree: int = 20
    #: L6b → higher-order relay (→ relay when ``ho_ratio`` is 0); 7.5 nS, within the range of the
    #: other corticothalamic weights here (6.5–10 nS), chosen so that the L6b loop runs in the
    #: intact circuit (docs/circuits.md)
    l6b_weight_nS: float = 7.5
    l6b_sigma: float = 0.05
    relay_noise_mV: float = 2.0
    trn_noise_mV: float = 2.0
    relay_bias_pA: float = 0.0
    trn_bias_pA: float = 0.0
    #: higher-order relay cells (POm-like) per first-order relay cell (a modelling choice: POm is the
    #: smaller nucleus); 0: no higher-order nucleus, ``l6b_feedback`` then lands on the relay cells
    #: (set the cortex's ``input_to_l6b_weight_nS`` to close the seed's L6b loop through them)
    ho_ratio: float = 0.5
    #: higher-order relay → its TRN sector (AMPA) and back (GABA-A), nS per synapse, with the
    #: first-order in-degrees and delays. The fast relay_ho ↔ trn_ho loop is what makes the L6b loop
    #: resonate instead of running away; ho → trn_ho 2.4 nS (1.5 × relay → TRN, a modelling choice)
    #: keeps the higher-order cells below ~30 Hz with and without L6a
    ho_to_trn_weight_nS: float = 2.4
    trn_to_ho_weight_nS: float = 6.8
    #: cross inhibition, first-order TRN sector → higher-order relay (GABA-A, nS per synapse,
    #: ``trn_to_relay_in_degree`` synapses)
    trn_fo_to_ho_weight_nS: float = 0.0
    #: membrane noise (mV) and bias current (pA) of the higher-order relay cells
    ho_noise_mV: float = 2.0
    ho_bias_pA: float = 0.0


class Thalamus(Region):
    """Relay + TRN builder (kind ``"thalamus"``); ``n_output`` relay cells (the first-order ones; the
    higher-order cells come on top, see the module docstring)."""

    kind: ClassVar[str] = "thalamus"
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {"relay": ("relay",), "relay_ho": ("relay_ho",)}
    default_source_port: ClassVar[str] = "relay"
    target_ports: ClassVar[tuple[str, ...]] = ("sensory", "l6a_feedback", "l6b_feedback")

    def __post_init__(self) -> None:
        self.sizes["relay"] = self.n_output
        self.sizes["trn"] = max(1, int(round(self.config.trn_ratio * self.n_output)))
        if self.config.ho_ratio > 0:
            self.sizes["relay_ho"] = max(1, int(round(self.config.ho_ratio * self.n_output)))
            self.sizes["trn_ho"] = max(1, int(round(self.config.trn_ratio * self.sizes["relay_ho"])))

    def build(self, net: Network, rng: np.random.Generator) -> None:
        c = self.config
        relay, trn = self.population("relay"), self.population("trn")
        net.add_population(relay, self.sizes["relay"], cells.relay(c.relay_noise_mV, c.relay_bias_pA, c.gaba_a_tau_ms))
        net.add_population(trn, self.sizes["trn"], cells.reticular(c.trn_noise_mV, c.trn_bias_pA, c.gaba_a_tau_ms))
        sigma = c.intrathalamic_sigma
        table = [
            (relay, trn, c.relay_to_trn_in_degree, c.relay_to_trn_weight_nS, "ampa", c.relay_to_trn_delay_ms),
            (trn, relay, c.trn_to_relay_in_degree, c.trn_to_relay_weight_nS, "gaba_a", c.trn_to_relay_delay_ms),
            (trn, relay, c.trn_to_relay_in_degree, c.trn_to_relay_gaba_b_weight_nS, "gaba_b", c.trn_to_relay_delay_ms),
            (trn, trn, c.trn_to_trn_in_degree, c.trn_to_trn_weight_nS, "gaba_a", 1.0),
        ]
        if "relay_ho" in self.sizes:
            ho, trn_ho = self.population("relay_ho"), self.population("trn_ho")
            net.add_population(ho, self.sizes["relay_ho"], cells.relay(c.ho_noise_mV, c.ho_bias_pA, c.gaba_a_tau_ms))
            net.add_population(
                trn_ho, self.sizes["trn_ho"], cells.reticular(c.trn_noise_mV, c.trn_bias_pA, c.gaba_a_tau_ms)
            )
            table += [
                (ho, trn_ho, c.relay_to_trn_in_degree, c.ho_to_trn_weight_nS, "ampa", c.relay_to_trn_delay_ms),
                (trn_ho, ho, c.trn_to_relay_in_degree, c.trn_to_ho_weight_nS, "gaba_a", c.trn_to_relay_delay_ms),
                (trn_ho, trn_ho, c.trn_to_trn_in_degree, c.trn_to_trn_weight_nS, "gaba_a", 1.0),
                (trn, ho, c.trn_to_relay_in_degree, c.trn_fo_to_ho_weight_nS, "gaba_a", c.trn_to_relay_delay_ms),
            ]
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

    def companion_routes(self, source_port: str | None, target: Region) -> list[tuple[str, str]]:
        """The higher-order relay cells project along with the relay port onto a target's
        ``higher_order`` port (a cortex's)."""
        if "relay_ho" in self.sizes and source_port in (None, "relay") and "higher_order" in target.target_ports:
            return [("relay_ho", "higher_order")]
        return []

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
            target = "relay_ho" if "relay_ho" in self.sizes else "relay"
            return [(self.population(target), c.l6b_in_degree, c.l6b_weight_nS, c.l6b_sigma)]
        return super().input_targets(port)

"""The Potjans & Diesmann (2014) microcircuit as the cortex of the thalamo-cortical circuits.

Component type ``"pd_cortex"`` (:class:`PDCortex`): the preset of :mod:`thalia.spiking.microcircuit`
with ``n_output`` L2/3 excitatory neurons (scale = n_output / 20683; the other populations in the
published proportions, in-degrees kept), current-based neurons beside the conductance-based thalamus.

Ports (the names of the layered :class:`~thalia.spiking.regions.Cortex`, so that circuits written for
it connect unchanged):

* source ports ``l23``, ``l4``, ``l5``, ``l6`` — the excitatory population of each layer. The model
  has one L6, so ``l6a`` and ``l6b`` are both its L6e; onto a thalamus ``l6a`` feeds the TRN
  (``l6a_feedback``), ``l6b`` the relay cells (``l6b_feedback``) and ``l6`` both, with the layered
  cortex's default delays (3 and 8 ms);
* target port ``feedforward`` (default): thalamic input onto L4e, L4i, L6e and L6i with the model's
  thalamic in-degrees (902 thalamic cells with the connection probabilities of Potjans & Diesmann:
  93, 58, 47 and 18 synapses per neuron) and weight (87.8 pA, a 0.15 mV PSP), none onto L2/3 and L5;
* target port ``attention``: top-down input onto L6e (as the layered cortex's attention port onto its
  corticothalamic L6 cells).

Weights of the synapses onto this cortex are currents (pA). Connections use the common routing
(:func:`thalia.spiking.regions.wiring.routes`) through :meth:`PDCortex.input_targets` and
:meth:`PDCortex.thalamic_target_ports`; default delays are a cortex's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from thalia._validation import check_option
from thalia.spiking import microcircuit
from thalia.spiking.network import Network
from thalia.spiking.regions.base import Region

#: Model population -> region role.
ROLES = {pop: f"{pop[:-1].lower()}_{pop[-1]}" for pop in microcircuit.POPULATIONS}
#: Thalamic targets of the feedforward port.
FEEDFORWARD = ("L4e", "L4i", "L6e", "L6i")
#: Thalamic port fed by each source port (a source port not named here feeds ``sensory``).
THALAMIC_PORTS = {"l6": ("l6a_feedback", "l6b_feedback"), "l6a": ("l6a_feedback",), "l6b": ("l6b_feedback",)}


@dataclass(frozen=True)
class PDCortexConfig:
    """External drive and input ports of the ``pd_cortex`` (rates Hz, weights pA, delays ms).

    ``external``, ``background_rate_hz``, ``k_scale``, ``v0``: as in
    :class:`~thalia.spiking.microcircuit.MicrocircuitConfig`; ``delay_floor_ms``: per-synapse delays
    are redrawn below it (NEST's resolution); ``feedforward_sigma`` / ``attention_sigma``: topographic
    width of the inputs (the model has no topography: wide by default).
    """

    external: str = "poisson"
    background_rate_hz: float = 8.0
    k_scale: float = 1.0
    v0: str = "original"
    delay_floor_ms: float = 0.1
    feedforward_weight_pA: float = 87.8
    feedforward_sigma: float = 10.0
    attention_in_degree: int = 50
    attention_weight_pA: float = 87.8
    attention_sigma: float = 10.0

    def __post_init__(self) -> None:
        check_option("external", self.external, microcircuit.EXTERNAL_MODES)
        check_option("v0", self.v0, microcircuit.V0_MODES)


class PDCortex(Region):
    """Potjans–Diesmann microcircuit builder (kind ``"pd_cortex"``); ``n_output`` L2/3e neurons."""

    kind: ClassVar[str] = "pd_cortex"
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {
        "l23": ("l23_e",), "l4": ("l4_e",), "l5": ("l5_e",), "l6": ("l6_e",), "l6a": ("l6_e",), "l6b": ("l6_e",),
    }  # fmt: skip
    default_source_port: ClassVar[str] = "l23"
    target_ports: ClassVar[tuple[str, ...]] = ("feedforward", "attention")
    delay_kind: ClassVar[str] = "cortex"

    def __post_init__(self) -> None:
        full = microcircuit.FULL_SIZES[0]
        if self.n_output > full:
            raise ValueError(
                f"Invalid value for 'n_output' of component {self.name!r} (pd_cortex): the L2/3e population has "
                f"at most {full} neurons (full scale), got {self.n_output}."
            )
        for pop, n in self.microcircuit_config.sizes.items():
            self.sizes[ROLES[pop]] = n

    @property
    def microcircuit_config(self) -> microcircuit.MicrocircuitConfig:
        c = self.config
        return microcircuit.MicrocircuitConfig(
            scale=self.n_output / microcircuit.FULL_SIZES[0], k_scale=c.k_scale, external=c.external,
            background_rate_hz=c.background_rate_hz, v0=c.v0, min_delay_ms=c.delay_floor_ms,
        )  # fmt: skip

    def build(self, net: Network, rng: np.random.Generator) -> None:
        names = {pop: self.population(role) for pop, role in ROLES.items()}
        microcircuit.add_microcircuit(net, self.microcircuit_config, rng, names)

    def thalamic_target_ports(self, role: str, source_port: str | None) -> tuple[str, ...]:
        """L6e feeds the TRN (``l6a``), the relay (``l6b``) or both (``l6``); other layers: ``sensory``."""
        return THALAMIC_PORTS.get(source_port or self.default_source_port, ("sensory",))

    def input_targets(self, port: str) -> list[tuple[str, int, float, float]]:
        """(population, in-degree, weight pA, topographic sigma) of each synapse group of a target port."""
        c = self.config
        if port == "feedforward":
            mc = self.microcircuit_config
            per_neuron = microcircuit.thalamic_synapse_numbers(dataclasses.replace(mc, scale=1.0))
            out = []
            for pop in FEEDFORWARD:
                k = microcircuit.POPULATIONS.index(pop)
                in_degree = int(round(per_neuron[k] / microcircuit.FULL_SIZES[k]))
                out.append((self.population(ROLES[pop]), in_degree, c.feedforward_weight_pA, c.feedforward_sigma))
            return out
        if port == "attention":
            return [(self.population("l6_e"), c.attention_in_degree, c.attention_weight_pA, c.attention_sigma)]
        return super().input_targets(port)


__all__ = ["PDCortex", "PDCortexConfig"]

"""The sensory pathway: a sheet of input neurons (e.g. retinal ganglion cells) feeding a thalamus.

Its neurons fire Poisson spikes at ``spontaneous_rate_hz`` (the maintained discharge of retinal
ganglion cells, ~10–30 Hz; Troy & Lee 1994) plus whatever :meth:`Brain.forward` gives them: spikes
(bool) are emitted as given; intensities (float, Hz) become Poisson spikes, passed first through an
optional centre–surround (difference-of-Gaussians) filter, the receptive field of ganglion cells
(Rodieck 1965; Enroth-Cugell & Robson 1966), with rates clipped at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from thalia.spiking.network import Network
from thalia.spiking.regions.base import Region


@dataclass(frozen=True)
class SensoryConfig:
    """Spontaneous rate and the centre–surround filter (widths as fractions of the sheet)."""

    spontaneous_rate_hz: float = 20.0
    centre_surround: bool = False
    centre_sigma: float = 0.02
    surround_sigma: float = 0.06
    surround_weight: float = 0.9


class SensoryPathway(Region):
    """Input sheet builder (kind ``"sensory_pathway"``); ``n_output`` neurons, no inputs."""

    kind: ClassVar[str] = "sensory_pathway"
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {"output": ("output",)}
    default_source_port: ClassVar[str] = "output"
    target_ports: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.sizes["output"] = self.n_output

    def build(self, net: Network, rng: np.random.Generator) -> None:
        net.add_spike_source(self.population("output"), self.n_output, rate_hz=self.config.spontaneous_rate_hz)

    @cached_property
    def filter_matrix(self) -> np.ndarray | None:
        """(n, n) centre–surround filter of intensities (computed once) (rows sum to 1 − surround_weight), or None."""
        c = self.config
        if not c.centre_surround:
            return None
        x = (np.arange(self.n_output) + 0.5) / self.n_output
        d = x[:, None] - x[None, :]

        def gauss(sigma):
            g = np.exp(-0.5 * (d / max(sigma, 1e-9)) ** 2)
            return g / g.sum(1, keepdims=True)

        return gauss(c.centre_sigma) - c.surround_weight * gauss(c.surround_sigma)

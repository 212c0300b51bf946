"""What every region builder shares: a name, a config dataclass, its populations and ports.

A region adds populations and projections to one :class:`~thalia.spiking.network.Network`
(DESIGN principle 3); it has no step code of its own. Population names are ``"<region>.<role>"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch

from thalia.spiking.network import Network


def check_config(config_cls: type, region: str, values: dict[str, Any]) -> Any:
    """Build ``config_cls(**values)`` with errors naming the region and the field."""
    known = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"Invalid configuration of component {region!r}: unknown field(s) {unknown}; "
            f"known fields of {config_cls.__name__}: {sorted(known)}."
        )
    config = config_cls(**values)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"Invalid value for field {f.name!r} of component {region!r}: expected a finite number >= 0, "
                f"got {value!r}."
            )
        if f.name.endswith(("_in_degree", "_size")) and (value != int(value)):
            raise ValueError(
                f"Invalid value for field {f.name!r} of component {region!r}: expected an integer, got {value!r}."
            )
    return config


def check_size(region: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"Invalid value for {name!r} of component {region!r}: expected an integer >= 1, got {value!r}."
        )
    return int(value)


@dataclass
class Region:
    """Base of the region builders (``kind`` names the builder type of :class:`BrainBuilder`)."""

    kind: ClassVar[str] = ""
    #: source port -> roles of the excitatory populations it carries
    source_ports: ClassVar[dict[str, tuple[str, ...]]] = {}
    default_source_port: ClassVar[str | None] = None
    #: target ports (the inputs the region accepts)
    target_ports: ClassVar[tuple[str, ...]] = ()
    #: kind used for default axonal delays (a cortex variant delays like a cortex)
    delay_kind: ClassVar[str | None] = None
    #: role of a source population -> its default target port on a thalamus
    thalamic_ports: ClassVar[dict[str, tuple[str, ...]]] = {}

    name: str
    n_input: int | None
    n_output: int
    config: Any
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:  # subclasses fill ``sizes``
        pass

    def population(self, role: str) -> str:
        return f"{self.name}.{role}"

    @property
    def populations(self) -> dict[str, str]:
        return {role: self.population(role) for role in self.sizes}

    def output_roles(self, port: str | None) -> tuple[str, ...]:
        """Populations carried by a source port (``None``: the default port)."""
        port = self.default_source_port if port is None else port
        if port not in self.source_ports:
            allowed = sorted(self.source_ports)
            raise ValueError(
                f"Invalid value for 'source_port' of component {self.name!r} ({self.kind}): allowed {allowed}, "
                f"got {port!r}."
            )
        return self.source_ports[port]

    def thalamic_target_ports(self, role: str, source_port: str | None) -> tuple[str, ...]:
        """Default target ports on a thalamus of the population ``role`` sent through ``source_port``."""
        return self.thalamic_ports.get(role, ("sensory",))

    def companion_routes(self, source_port: str | None, target: Region) -> list[tuple[str, str]]:
        """(role, target port) of populations that project along with a default-port connection to
        ``target`` (made only when the connection names no target port); none by default."""
        return []

    def input_targets(self, port: str) -> list[tuple[str, int, float, float]]:
        """(population, in-degree, weight, topographic sigma) of each synapse group of a target port."""
        raise ValueError(
            f"Invalid value for 'target_port' of component {self.name!r} ({self.kind}): allowed "
            f"{list(self.target_ports)}, got {port!r}."
        )

    def build(self, net: Network, rng: np.random.Generator) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # runtime view (set by the Brain after every call) ------------------------------------------
    @property
    def state(self) -> SimpleNamespace:
        """Spikes of the last step per population: ``state.<role>_spikes`` (bool tensors), e.g.
        ``relay_spikes``, ``trn_spikes``, ``l23_spikes`` (pyramidal), ``l23_i_spikes``."""
        if "_state" not in self.__dict__:
            self._state = SimpleNamespace()
        return self._state

    def _set_last(self, last: dict[str, torch.Tensor]) -> None:
        for role, pop in self.populations.items():
            if pop in last:
                setattr(self.state, f"{role.removesuffix('_e')}_spikes", last[pop])

    def default_output(self) -> torch.Tensor:
        """Spikes of the last step on the default source port."""
        roles = self.output_roles(None)
        return torch.cat([getattr(self.state, f"{role.removesuffix('_e')}_spikes") for role in roles])

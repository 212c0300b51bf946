"""``BrainBuilder``: the seed's API for assembling regions into one spiking network, and ``Brain``.

    from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig
    builder = BrainBuilder(GlobalConfig(dt_ms=1.0, device="cpu"))
    builder.add_component("sensory", "sensory_pathway", n_output=128)
    builder.add_component("thalamus", "thalamus", n_input=128, n_output=128)
    builder.add_component("cortex", "cortex", n_output=256)
    builder.connect("sensory", "thalamus", pathway_type="axonal")
    builder.connect("thalamus", "cortex", pathway_type="spiking")
    builder.connect("cortex", "thalamus", source_port="l6", pathway_type="axonal")
    brain = builder.build()
    brain.forward(input_spikes, n_timesteps=100)

Every component is a region builder (:mod:`thalia.spiking.regions`) that adds populations and
projections to one :class:`~thalia.spiking.network.Network`; ``build`` makes every connection's
synapses and a :class:`~thalia.spiking.engine.Simulator`, which ``Brain.forward`` advances.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thalia._validation import check_option
from thalia.spiking.brain import Brain, Connection
from thalia.spiking.connectivity import Topographic
from thalia.spiking.network import Network
from thalia.spiking.regions import REGION_TYPES, routes
from thalia.spiking.regions.base import check_config, check_size

PATHWAY_TYPES = ("axonal", "spiking", "axonal_projection")
PRESETS = ("thalamocortical",)


@dataclass(frozen=True)
class GlobalConfig:
    """Settings shared by every component: time step (ms), device, seed, backend, float type.

    ``backend`` is the engine's (``"auto"``: the compiled CPU loop on the CPU, PyTorch elsewhere);
    ``dtype`` ``"float64"`` (default) or ``"float32"`` (PyTorch backend only: faster on GPUs).
    """

    dt_ms: float = 1.0
    device: str = "cpu"
    seed: int = 0
    backend: str = "auto"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if isinstance(self.dt_ms, bool) or not np.isfinite(self.dt_ms) or self.dt_ms <= 0:
            raise ValueError(f"Invalid value for 'dt_ms' of GlobalConfig: expected > 0 ms, got {self.dt_ms!r}.")
        check_option("backend", self.backend, ("auto", "torch", "numba"))
        check_option("dtype", self.dtype, ("float64", "float32"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"Invalid value for 'seed' of GlobalConfig: expected an integer, got {self.seed!r}.")


@dataclass
class ComponentSpec:
    name: str
    kind: str
    n_input: int | None
    n_output: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnectionSpec:
    source: str
    target: str
    source_port: str | None = None
    target_port: str | None = None
    pathway_type: str = "axonal"
    axonal_delay_ms: float | None = None


class BrainBuilder:
    """Collects components and connections; :meth:`build` checks them all and makes a :class:`Brain`."""

    def __init__(self, global_config: GlobalConfig | None = None) -> None:
        self.global_config = GlobalConfig() if global_config is None else global_config
        if not isinstance(self.global_config, GlobalConfig):
            raise ValueError(f"Invalid value for 'global_config': expected a GlobalConfig, got {global_config!r}.")
        self.components: dict[str, ComponentSpec] = {}
        self.connection_specs: list[ConnectionSpec] = []

    def add_component(
        self, name: str, component_type: str, *, n_input: int | None = None, n_output: int | None = None, **config: Any
    ) -> BrainBuilder:
        """Add a region: ``component_type`` ``"sensory_pathway"``, ``"thalamus"`` or ``"cortex"``;
        keyword arguments set fields of its config (:class:`~thalia.spiking.regions.CortexConfig`, …)."""
        if not isinstance(name, str) or not name or "." in name or "/" in name:
            raise ValueError(f"Invalid value for 'name': expected a non-empty string without '.' or '/', got {name!r}.")
        if name in self.components:
            raise ValueError(f"Invalid value for 'name': a component {name!r} exists already.")
        if component_type not in REGION_TYPES:
            raise ValueError(
                f"Invalid value for 'component_type' of component {name!r}: allowed {sorted(REGION_TYPES)}, "
                f"got {component_type!r}."
            )
        if n_output is None:
            raise ValueError(f"Invalid value for 'n_output' of component {name!r}: expected an integer >= 1, got None.")
        check_size(name, "n_output", n_output)
        if n_input is not None:
            check_size(name, "n_input", n_input)
        check_config(REGION_TYPES[component_type][1], name, config)
        self.components[name] = ComponentSpec(name, component_type, n_input, int(n_output), dict(config))
        return self

    def connect(
        self,
        source: str,
        target: str,
        *,
        source_port: str | None = None,
        target_port: str | None = None,
        pathway_type: str = "axonal",
        axonal_delay_ms: float | None = None,
    ) -> BrainBuilder:
        """Connect two components (ports: see the regions). ``pathway_type`` is the seed's name for the
        pathway: ``"axonal"`` and ``"spiking"`` both make delayed spike projections onto synapses at the
        target (the only kind there is). ``axonal_delay_ms`` defaults per pathway
        (:data:`thalia.spiking.regions.DEFAULT_DELAY_MS`); it must be a multiple of dt."""
        label = f"{source!r} -> {target!r}"
        for role, name in (("source", source), ("target", target)):
            if name not in self.components:
                raise ValueError(
                    f"Invalid value for {role!r} of connection {label}: unknown component {name!r}; "
                    f"known {list(self.components)}."
                )
        check_option("pathway_type", pathway_type, PATHWAY_TYPES)
        if axonal_delay_ms is not None:
            _check_delay(label, axonal_delay_ms, self.global_config.dt_ms)
        spec = ConnectionSpec(source, target, source_port, target_port, pathway_type, axonal_delay_ms)
        routes(self._region(source), self._region(target), source_port, target_port)  # checks the ports now
        self.connection_specs.append(spec)
        return self

    def _region(self, name: str):
        spec = self.components[name]
        cls, cfg = REGION_TYPES[spec.kind]
        return cls(spec.name, spec.n_input, spec.n_output, check_config(cfg, spec.name, spec.config))

    def _regions(self) -> dict:
        return {name: self._region(name) for name in self.components}

    def build(self) -> Brain:
        """Make the network: every component's populations, then every connection's synapses."""
        return self._build(start=True)

    def _build(self, start: bool) -> Brain:
        """:meth:`build`; ``start=False`` leaves the simulator to the caller (``Brain.load``)."""
        if not self.components:
            raise ValueError("Invalid builder: no components were added.")
        gc = self.global_config
        regions = self._regions()
        for region in regions.values():
            for f in dataclasses.fields(region.config):
                if f.name.endswith("_delay_ms"):
                    _check_delay(
                        f"field {f.name!r} of component {region.name!r}", getattr(region.config, f.name), gc.dt_ms
                    )
        net = Network()
        rng = np.random.default_rng(gc.seed)
        for region in regions.values():
            region.build(net, rng)
        connections: dict[tuple[str, str], Connection] = {}
        fed = set()
        for spec in self.connection_specs:
            made = self._make(net, regions, spec, rng)
            fed.update(port_target for port_target in made.target_ports)
            key = (spec.source, spec.target)
            connections[key] = connections[key].merged(made) if key in connections else made
        inputs = self._inputs(net, regions, fed, rng)
        self._check_input_sizes(regions, connections)
        return Brain(gc, regions, connections, net, inputs, self.spec(), start=start)

    def _make(self, net: Network, regions: dict, spec: ConnectionSpec, rng) -> Connection:
        src, tgt = regions[spec.source], regions[spec.target]
        names, ports = [], set()
        for route in routes(src, tgt, spec.source_port, spec.target_port):
            delay = route.default_delay_ms if spec.axonal_delay_ms is None else spec.axonal_delay_ms
            _check_delay(f"{spec.source!r} -> {spec.target!r}", delay, self.global_config.dt_ms)
            n_pre = net.populations[route.pre].n
            k = min(route.in_degree, n_pre - (route.pre == route.post))
            if k <= 0 or route.weight_nS <= 0:
                continue
            name = f"{route.pre}->{route.post}:{route.target_port}"
            net.connect(route.pre, route.post, Topographic(k, route.sigma), weight_nS=route.weight_nS,
                        receptor="ampa", delay_ms=delay, rng=rng, name=name)  # fmt: skip
            names.append(name)
            ports.add((spec.target, route.target_port))
        return Connection(spec.source, spec.target, [spec], names, ports)

    def _inputs(self, net: Network, regions: dict, fed: set, rng) -> dict[str, str]:
        """Input population of every component that takes external input: sensory pathways, and
        thalami whose sensory port no connection feeds (they get ``"<name>.input"``)."""
        inputs = {}
        for name, region in regions.items():
            if region.kind == "sensory_pathway":
                inputs[name] = region.population("output")
            elif region.kind == "thalamus" and (name, "sensory") not in fed:
                n_in = region.n_input or region.n_output
                pop = region.population("input")
                net.add_spike_source(pop, n_in)
                for post, k, w, sigma in region.input_targets("sensory"):
                    net.connect(pop, post, Topographic(min(k, n_in), sigma), weight_nS=w, delay_ms=1.0, rng=rng,
                                name=f"{pop}->{post}:sensory")  # fmt: skip
                inputs[name] = pop
        return inputs

    def _check_input_sizes(self, regions: dict, connections: dict) -> None:
        for name, region in regions.items():
            if region.kind != "thalamus" or region.n_input is None:
                continue
            sources = [
                regions[s] for (s, t), c in connections.items() if t == name and (name, "sensory") in c.target_ports
            ]
            total = sum(s.n_output for s in sources)
            if sources and total != region.n_input:
                raise ValueError(
                    f"Invalid value for 'n_input' of component {name!r}: its sensory sources "
                    f"{[s.name for s in sources]} have {total} neurons in all, but n_input = {region.n_input}."
                )

    # specs -----------------------------------------------------------------------------------
    def spec(self) -> dict:
        return {
            "global_config": dataclasses.asdict(self.global_config),
            "components": [dataclasses.asdict(c) for c in self.components.values()],
            "connections": [dataclasses.asdict(c) for c in self.connection_specs],
        }

    def save_spec(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.spec(), indent=2))
        return path

    @classmethod
    def from_spec(cls, spec: dict, global_config: GlobalConfig | None = None) -> BrainBuilder:
        builder = cls(global_config or GlobalConfig(**spec["global_config"]))
        for c in spec["components"]:
            builder.add_component(c["name"], c["kind"], n_input=c["n_input"], n_output=c["n_output"], **c["config"])
        for c in spec["connections"]:
            builder.connect(c.pop("source"), c.pop("target"), **c)
        return builder

    @classmethod
    def load_spec(cls, path: str | Path, global_config: GlobalConfig | None = None) -> BrainBuilder:
        return cls.from_spec(json.loads(Path(path).read_text()), global_config)

    # presets ---------------------------------------------------------------------------------
    @staticmethod
    def list_presets() -> list[str]:
        return list(PRESETS)

    @classmethod
    def preset(cls, name: str, global_config: GlobalConfig | None = None, **sizes: int) -> BrainBuilder:
        """``"thalamocortical"``: the default circuit (sensory 128 → thalamus 128 relay / 64 TRN →
        cortex 256) with L6a → TRN and L6b → relay feedback; ``n_sensory``, ``n_relay``, ``n_cortex``
        change its sizes."""
        check_option("name", name, PRESETS)
        unknown = set(sizes) - {"n_sensory", "n_relay", "n_cortex"}
        if unknown:
            raise ValueError(f"Invalid preset argument(s) {sorted(unknown)}: allowed n_sensory, n_relay, n_cortex.")
        n_s, n_r, n_c = sizes.get("n_sensory", 128), sizes.get("n_relay", 128), sizes.get("n_cortex", 256)
        builder = cls(global_config)
        builder.add_component("sensory", "sensory_pathway", n_output=n_s)
        builder.add_component("thalamus", "thalamus", n_input=n_s, n_output=n_r)
        builder.add_component("cortex", "cortex", n_output=n_c)
        builder.connect("sensory", "thalamus")
        builder.connect("thalamus", "cortex")
        builder.connect("cortex", "thalamus", source_port="l6")
        return builder


def _check_delay(label: str, delay_ms: Any, dt_ms: float) -> None:
    if (
        isinstance(delay_ms, bool)
        or not isinstance(delay_ms, int | float)
        or not np.isfinite(delay_ms)
        or delay_ms <= 0
    ):
        raise ValueError(f"Invalid value for {_what(label)}: expected > 0 ms, got {delay_ms!r}.")
    steps = delay_ms / dt_ms
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise ValueError(
            f"Invalid value for {_what(label)}: expected a multiple of dt = {dt_ms} ms, got {delay_ms} ms."
        )


def _what(label: str) -> str:
    return label if label.startswith("field ") else f"'axonal_delay_ms' of connection {label}"

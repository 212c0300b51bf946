"""``Brain``: a built circuit, advanced step by step (the seed's ``brain.forward(input, n_timesteps)``).

A ``Brain`` holds the regions (``brain.components``), the connections (``brain.connections``, keyed
``(source, target)``), the flat :class:`~thalia.spiking.network.Network` and one
:class:`~thalia.spiking.engine.Simulator` whose state carries over from call to call.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thalia.spiking.engine import SimulationResult, Simulator
from thalia.spiking.network import Network

FORMAT = "thalia.brain/1"


@dataclass
class Connection:
    """One ``(source, target)`` pair: the builder calls it came from and the projections it made."""

    source: str
    target: str
    specs: list = field(default_factory=list)
    projections: list[str] = field(default_factory=list)
    target_ports: set = field(default_factory=set)

    def merged(self, other: Connection) -> Connection:
        return Connection(
            self.source, self.target, self.specs + other.specs, self.projections + other.projections,
            self.target_ports | other.target_ports,
        )  # fmt: skip


class Brain:
    """A built circuit. ``forward`` runs it; ``components[name].state`` holds each region's spikes of
    the last step; :meth:`run` returns the full :class:`SimulationResult` of a stretch of time."""

    def __init__(
        self, global_config, regions: dict, connections: dict, network: Network, inputs: dict, spec: dict,
        start: bool = True,
    ):  # fmt: skip
        self.global_config = global_config
        self.components = regions
        self.connections = connections
        self.network = network
        self.inputs = inputs
        self.spec = spec
        if start:
            self._start()

    def _start(self) -> None:
        """A fresh simulator of ``network`` (the state right after ``build``) and the input generator."""
        gc = self.global_config
        self.time_ms = 0.0
        self._poisson = torch.Generator().manual_seed(int(gc.seed) + 1)
        pyramidal = [
            r.layer_population(layer) for r in self.components.values() if r.kind == "cortex" for layer in ("l23", "l5")
        ]
        self.simulator = Simulator(
            self.network, dt_ms=gc.dt_ms, seed=gc.seed, backend=gc.backend, device=gc.device,
            dtype=getattr(torch, gc.dtype), record_currents=pyramidal,
        )  # fmt: skip
        self._update_state(None, 0)

    # running ---------------------------------------------------------------------------------
    def forward(self, inputs: Any = None, n_timesteps: int | None = None) -> dict:
        """Run ``n_timesteps`` steps of dt (default 1). ``inputs``: a tensor for the brain's only input
        component, or a dict component name -> tensor. Bool tensors are spikes, (n,) every step or
        (n_timesteps, n); float tensors are intensities in Hz, (n,) or (n_timesteps, n), turned into
        Poisson spikes (through a sensory pathway's centre–surround filter when it has one).

        Returns a dict with ``outputs`` (each component's default-port spikes of the last step),
        ``spike_counts`` (spikes per population in this call), ``time`` (ms simulated in this call),
        ``final_time`` (ms since the brain was built) and ``result`` (the :class:`SimulationResult`).
        """
        n = 1 if n_timesteps is None else n_timesteps
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"Invalid value for 'n_timesteps': expected an integer >= 1, got {n_timesteps!r}.")
        result = self.run(int(n) * self.global_config.dt_ms, inputs)
        counts = {name: int(((result.spike_ids >= sl.start) & (result.spike_ids < sl.stop)).sum())
                  for name, sl in result.populations.items()}  # fmt: skip
        outputs = {name: region.default_output() for name, region in self.components.items()}
        return {"outputs": outputs, "spike_counts": counts, "time": result.duration_ms,
                "final_time": self.time_ms, "result": result}  # fmt: skip

    def run(self, duration_ms: float, inputs: Any = None, *, progress: bool = False) -> SimulationResult:
        """Advance by ``duration_ms`` (a multiple of dt); inputs as in :meth:`forward`."""
        dt = self.global_config.dt_ms
        n = int(round(duration_ms / dt))
        if not np.isfinite(duration_ms) or n < 1 or abs(n * dt - duration_ms) > 1e-9 * max(1.0, duration_ms):
            raise ValueError(
                f"Invalid value for 'duration_ms': expected a positive multiple of dt = {dt} ms, got {duration_ms!r}."
            )
        forced = self._forced(inputs, n)
        result = self.simulator.run(n, inputs=forced, progress=progress)
        self.time_ms += result.duration_ms
        self._update_state(result, n)
        return result

    def _forced(self, inputs: Any, n_steps: int) -> dict[str, np.ndarray]:
        if inputs is None:
            return {}
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise ValueError(
                    f"Invalid value for 'inputs': this brain has {len(self.inputs)} input components "
                    f"{sorted(self.inputs)}; pass a dict name -> tensor."
                )
            inputs = {next(iter(self.inputs)): inputs}
        out = {}
        for name, value in inputs.items():
            if name not in self.inputs:
                raise ValueError(
                    f"Invalid value for 'inputs': {name!r} takes no input; input components: {sorted(self.inputs)}."
                )
            out[self.inputs[name]] = self._spikes(name, value, n_steps)
        return out

    def _spikes(self, name: str, value: Any, n_steps: int) -> np.ndarray:
        x = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        n = self.network.populations[self.inputs[name]].n
        if x.shape not in ((n,), (n_steps, n)):
            raise ValueError(
                f"Invalid value for inputs[{name!r}]: expected shape ({n},) or ({n_steps}, {n}), got {x.shape}."
            )
        if x.dtype == bool:
            return x
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all() or (x < 0).any():
            raise ValueError(f"Invalid value for inputs[{name!r}]: expected bool spikes or finite rates >= 0 Hz.")
        region = self.components[name]
        filt = region.filter_matrix if region.kind == "sensory_pathway" else None
        rates = np.clip(x @ filt.T, 0.0, None) if filt is not None else x.astype(float)
        p = -np.expm1(-np.broadcast_to(rates, (n_steps, n)) * self.global_config.dt_ms / 1000.0)
        u = torch.rand(n_steps, n, generator=self._poisson, dtype=torch.float64).numpy()
        return u < p

    def _update_state(self, result: SimulationResult | None, n_steps: int) -> None:
        last = {}
        for name, sl in self.network_slices().items():
            spikes = torch.zeros(sl.stop - sl.start, dtype=torch.bool)
            if result is not None:
                keep = (
                    (result.spike_steps == n_steps - 1) & (result.spike_ids >= sl.start) & (result.spike_ids < sl.stop)
                )
                spikes[torch.as_tensor(result.spike_ids[keep] - sl.start)] = True
            last[name] = spikes
        for region in self.components.values():
            region._set_last(last)

    def network_slices(self) -> dict[str, slice]:
        return dict(self.simulator.compiled.population_slices)

    def reset_state(self) -> None:
        """Back to the state right after ``build`` (same seed: the same run again)."""
        self._start()

    # saving ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write spec, synapses (weights as they are now) and the simulator state to one ``.npz``."""
        path = Path(path)
        arrays = {f"state/{k}": np.asarray(v) for k, v in self.simulator.state_dict().items()}
        for proj in self.network.projections:
            arrays[f"proj/{proj.name}/pre"] = proj.pre_idx
            arrays[f"proj/{proj.name}/post"] = proj.post_idx
        for name, w in self.simulator.weights().items():
            arrays[f"proj/{name}/weight"] = w
        meta = {"format": FORMAT, "spec": self.spec, "time_ms": self.time_ms}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Brain:
        """A brain saved by :meth:`save`, continuing exactly where it stopped."""
        from thalia.spiking.builder import BrainBuilder

        with np.load(Path(path)) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise ValueError(
                    f"Invalid file {str(path)!r}: not a saved thalia brain (format {meta.get('format')!r})."
                )
            brain = BrainBuilder.from_spec(meta["spec"])._build(start=False)  # compiled once, below
            for k, proj in enumerate(brain.network.projections):
                stored = {x: data[f"proj/{proj.name}/{x}"] for x in ("pre", "post", "weight")}
                brain.network.projections[k] = dataclasses.replace(
                    proj, pre_idx=stored["pre"], post_idx=stored["post"], weight_nS=stored["weight"]
                )
            brain._start()
            state = {k[len("state/") :]: data[k] for k in data.files if k.startswith("state/")}
            brain.simulator.load_state_dict(state)
            brain.time_ms = meta["time_ms"]
        return brain

"""Many independent network instances in one run (parameter sweeps, repeated trials).

The instances are merged into one network (a disjoint union: instance k's population ``name``
becomes ``"k/name"``), stepped by one engine call, and the result is split back per instance. The
instances share nothing but the step loop, so any backend and device runs a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from thalia.spiking.engine import SimulationResult, simulate
from thalia.spiking.network import Network


def merge(networks: Sequence[Network]) -> Network:
    """The disjoint union of ``networks``: population/projection names prefixed ``"k/"``."""
    if not networks or not all(isinstance(net, Network) for net in networks):
        raise ValueError("Invalid value for 'networks': expected a non-empty sequence of Network objects.")
    merged = Network()
    for k, net in enumerate(networks):
        for pop in net.populations.values():
            added = merged.add_population(f"{k}/{pop.name}", pop.n, pop.neuron)
            merged.populations[added.name] = replace(added, source=pop.source)
        for proj in net.projections:
            merged.projections.append(
                replace(proj, name=f"{k}/{proj.name}", pre=f"{k}/{proj.pre}", post=f"{k}/{proj.post}")
            )
    return merged


def simulate_batch(
    networks: Sequence[Network],
    duration_ms: float,
    *,
    record_v: dict[str, Sequence[int]] | None = None,
    record_currents: Sequence[str] = (),
    **options: Any,
) -> list[SimulationResult]:
    """Run independent ``networks`` together; one :class:`SimulationResult` per network.

    ``record_v`` and ``record_currents`` name populations as in each network (applied to every
    instance that has them); other options as :func:`~thalia.spiking.simulate`. Randomness comes from
    the one seed of the run: a batch is reproducible as a whole.
    """
    merged = merge(networks)
    names = [list(net.populations) for net in networks]
    record = {
        f"{k}/{name}": idx for k, pops in enumerate(names) for name, idx in (record_v or {}).items() if name in pops
    }
    currents = [f"{k}/{name}" for k, pops in enumerate(names) for name in record_currents if name in pops]
    result = simulate(merged, duration_ms, record_v=record, record_currents=currents, **options)
    return [_instance(result, k, networks[k]) for k in range(len(networks))]


def _instance(result: SimulationResult, k: int, network: Network) -> SimulationResult:
    prefix = f"{k}/"
    slices = {name[len(prefix) :]: sl for name, sl in result.populations.items() if name.startswith(prefix)}
    start = min(sl.start for sl in slices.values())
    stop = max(sl.stop for sl in slices.values())
    keep = (result.spike_ids >= start) & (result.spike_ids < stop)

    def strip(d: dict) -> dict:
        return {name[len(prefix) :]: value for name, value in d.items() if name.startswith(prefix)}

    return SimulationResult(
        dt_ms=result.dt_ms,
        duration_ms=result.duration_ms,
        spike_steps=result.spike_steps[keep],
        spike_ids=result.spike_ids[keep] - start,
        populations={name: slice(sl.start - start, sl.stop - start) for name, sl in slices.items()},
        voltage=strip(result.voltage),
        weights=strip(result.weights),
        wall_s=result.wall_s,
        backend=result.backend,
        currents=strip(result.currents),
        start_ms=result.start_ms,
        state={var: strip(values) for var, values in result.state.items()},
    )


__all__ = ["merge", "simulate_batch"]

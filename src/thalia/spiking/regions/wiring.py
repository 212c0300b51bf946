"""Which synapses one builder connection makes: source port → target port → population pairs.

The synapses live at the target: the target region's config gives in-degree, weight and
topographic width. Default axonal delays (ms) per pathway, when ``connect`` gives none:

* sensory → thalamus 1 ms (optic tract, retina → LGN latency beyond the retina);
* thalamus → cortex 2 ms (thalamocortical conduction, 1–3 ms in rodents; Swadlow 1995);
* cortex L6a → thalamus (TRN, relay) and L6b → higher-order relay: see ``DEFAULT_DELAY_MS`` and docs/circuits.md
  for why these values (corticothalamic axons conduct slowly, 2–10 ms; Swadlow & Weyand 1987);
* cortex → cortex 2 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from thalia.spiking.regions.base import Region

DEFAULT_DELAY_MS = {
    ("sensory_pathway", "thalamus"): 1.0,
    ("thalamus", "cortex"): 2.0,
    ("thalamus", "thalamus"): 2.0,
    ("cortex", "cortex"): 2.0,
    ("cortex", "l6a_feedback"): 3.0,
    ("cortex", "l6b_feedback"): 10.0,
    ("cortex", "sensory"): 5.0,
    ("sensory_pathway", "cortex"): 2.0,
}


@dataclass(frozen=True)
class Route:
    """One synapse group of a connection: pre → post with its rule parameters."""

    pre: str
    post: str
    target_port: str
    in_degree: int
    weight_nS: float
    sigma: float
    default_delay_ms: float


def routes(src: Region, tgt: Region, source_port: str | None, target_port: str | None) -> list[Route]:
    """The synapse groups of ``connect(src, tgt, source_port, target_port)`` (errors name both ends)."""
    if not tgt.target_ports:
        raise ValueError(
            f"Invalid connection {src.name!r} -> {tgt.name!r}: component {tgt.name!r} ({tgt.kind}) takes no inputs."
        )
    roles = src.output_roles(source_port)
    if target_port is not None and target_port not in tgt.target_ports:
        raise ValueError(
            f"Invalid value for 'target_port' of connection {src.name!r} -> {tgt.name!r}: allowed "
            f"{list(tgt.target_ports)} for a {tgt.kind}, got {target_port!r}."
        )
    pairs = []  # (role, target port) of every synapse group
    for role in roles:
        if target_port is not None:
            ports = (target_port,)
        elif tgt.kind == "thalamus":
            ports = src.thalamic_target_ports(role, source_port)
        else:
            ports = tgt.target_ports[:1]
        pairs += [(role, port) for port in ports]
    if target_port is None:
        pairs += src.companion_routes(source_port, tgt)
    out = []
    for role, port in pairs:
        delay = _default_delay(src, tgt, port)
        for post, k, w, sigma in tgt.input_targets(port):
            out.append(Route(src.population(role), post, port, k, w, sigma, delay))
    return out


def _default_delay(src: Region, tgt: Region, port: str) -> float:
    src_kind, tgt_kind = src.delay_kind or src.kind, tgt.delay_kind or tgt.kind
    if src_kind == "cortex" and tgt_kind == "thalamus":
        return DEFAULT_DELAY_MS[("cortex", port)]
    return DEFAULT_DELAY_MS.get((src_kind, tgt_kind), 2.0)

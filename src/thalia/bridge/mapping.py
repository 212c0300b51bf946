"""The parameter map between a spiking thalamo-cortical circuit and the TCM neural mass model.

**Populations.** Each of the TCM's eight populations stands for one or more populations of the
circuit (:data:`POPULATION_MAP`, roles of the ``"cortex"`` and ``"thalamus"`` components):

=====  ==========================================  ===========================================
TCM    meaning                                     circuit populations
=====  ==========================================  ===========================================
SS     L4 spiny stellates (granular input)         cortex ``l4_e``
SP     L2/3 superficial pyramids                   cortex ``l23_e``
SI     superficial interneurons                    cortex ``l4_i``, ``l23_i``
DP     L5 deep pyramids                            cortex ``l5_e``
DI     deep interneurons                           cortex ``l5_i``, ``l6a_i``, ``l6b_i``
TP     L6 thalamic-projecting pyramids             cortex ``l6a_e``, ``l6b_e``
RT     thalamic reticular nucleus                  thalamus ``trn``, ``trn_ho``
RC     thalamic relay cells                        thalamus ``relay``, ``relay_ho``
=====  ==========================================  ===========================================

**Receptor time constants.** The TCM has one decay time constant per receptor, τ = TAU_MS·exp(T)
(AMPA 2.2, GABA-A 5, NMDA 100, GABA-B 300 ms at T = 0). The circuit's value of a receptor is the mean
of the decay time constants of the cells that receive it, weighted by the total synaptic conductance
(Σ peak conductance, nS) of the projections onto them; the TCM prior mean is then
T = ln(τ_circuit / TAU_MS). Receptors the circuit does not use keep the TCM's prior.

**Delays.** The TCM's cortico-thalamic delay 8·exp(CT) ms (every cortical population to RT and RC)
and thalamo-cortical delay 3·exp(TC) ms (RT and RC to the cortex) take the conductance-weighted mean
axonal delay of the circuit's cortex → thalamus and thalamus → cortex projections.

Everything is read from a built :class:`~thalia.spiking.brain.Brain` (its flat network), so the map
follows the circuit's configuration, whatever its defaults are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from thalia.mass import TCM
from thalia.mass import tcm_constants as K
from thalia.params import ParamSpace

#: TCM population -> (component kind, roles) of the circuit populations it stands for.
POPULATION_MAP: dict[str, tuple[str, tuple[str, ...]]] = {
    "SS": ("cortex", ("l4_e",)),
    "SP": ("cortex", ("l23_e",)),
    "SI": ("cortex", ("l4_i", "l23_i")),
    "DP": ("cortex", ("l5_e",)),
    "DI": ("cortex", ("l5_i", "l6a_i", "l6b_i")),
    "TP": ("cortex", ("l6a_e", "l6b_e")),
    "RT": ("thalamus", ("trn", "trn_ho")),
    "RC": ("thalamus", ("relay", "relay_ho")),
}
#: TCM receptors with a time constant (index into T / TAU_MS) and the circuit's receptor names.
RECEPTORS = {"AMPA": (0, "ampa"), "GABA-A": (1, "gaba_a"), "NMDA": (2, "nmda"), "GABA-B": (3, "gaba_b")}
#: TCM populations that are inhibitory; cortical and thalamic populations.
INHIBITORY = ("SI", "DI", "RT")
CORTICAL = ("SS", "SP", "SI", "DP", "DI", "TP")
THALAMIC = ("RT", "RC")


def bridge_model() -> TCM:
    """The mass model of the bridge: a one-source TCM with the ``global`` receptor scales
    (exp(global) multiplies the AMPA, NMDA, GABA-A and GABA-B topologies; fixed at 0 = the standard
    TCM), through which drugs act on a whole receptor type."""
    return TCM(extras=("global",))


@dataclass(frozen=True)
class CircuitParameters:
    """What the circuit says about the mass model's parameters.

    Attributes
    ----------
    populations : dict
        TCM population -> circuit population names (``"cortex.l23_e"``, …).
    tau_ms : dict
        TCM receptor (``"AMPA"``, ``"GABA-A"``, ``"NMDA"``, ``"GABA-B"``) -> conductance-weighted
        mean decay time constant (ms) in the circuit; receptors the circuit does not use are absent.
    cortico_thalamic_delay_ms, thalamo_cortical_delay_ms : float or None
        Conductance-weighted mean axonal delays (ms); None when the circuit has no such projection.
    """

    populations: dict[str, tuple[str, ...]]
    tau_ms: dict[str, float]
    cortico_thalamic_delay_ms: float | None
    thalamo_cortical_delay_ms: float | None

    def table(self) -> list[dict]:
        """Rows (quantity, circuit value, TCM parameter, its prior mean implied by the circuit)."""
        rows = [
            {"quantity": f"{name} decay (ms)", "circuit": tau, "TCM parameter": f"T[0,{RECEPTORS[name][0]}]",
             "TCM default (ms)": float(K.TAU_MS[RECEPTORS[name][0]]),
             "prior mean": float(np.log(tau / K.TAU_MS[RECEPTORS[name][0]]))}
            for name, tau in self.tau_ms.items()
        ]  # fmt: skip
        for label, value, name, base in (
            ("cortico-thalamic delay (ms)", self.cortico_thalamic_delay_ms, "CT", K.CT_MS),
            ("thalamo-cortical delay (ms)", self.thalamo_cortical_delay_ms, "TC", K.TC_MS),
        ):
            if value is not None:
                rows.append({"quantity": label, "circuit": value, "TCM parameter": name,
                             "TCM default (ms)": base, "prior mean": float(np.log(value / base))})  # fmt: skip
        return rows


def population_names(brain) -> dict[str, tuple[str, ...]]:
    """TCM population -> the circuit's population names, for a brain with one cortex and one thalamus."""
    regions = {}
    for kind in ("cortex", "thalamus"):
        found = [region for region in brain.components.values() if region.kind == kind]
        if len(found) != 1:
            raise ValueError(
                f"Invalid value for 'brain': the bridge maps a circuit with exactly one {kind} component, "
                f"got {len(found)} ({[r.name for r in found]})."
            )
        regions[kind] = found[0]
    return {
        pop: tuple(regions[kind].population(role) for role in roles) for pop, (kind, roles) in POPULATION_MAP.items()
    }


def circuit_parameters(brain) -> CircuitParameters:
    """Receptor time constants and thalamo-cortical delays of a built circuit (see the module doc)."""
    populations = population_names(brain)
    net = brain.network
    cortex = {name for pop in CORTICAL for name in populations[pop]}
    thalamus = {name for pop in THALAMIC for name in populations[pop]}
    onto_mapped = [proj for proj in net.projections if proj.post in cortex | thalamus]
    tau_ms = {}
    for name, (_, receptor) in RECEPTORS.items():
        group = [proj for proj in onto_mapped if proj.receptor == receptor]
        taus = [net.populations[proj.post].neuron.tau_ms[receptor] for proj in group]
        mean = _weighted_mean(group, taus)
        if mean is not None:
            tau_ms[name] = mean
    ct = [proj for proj in onto_mapped if proj.pre in cortex and proj.post in thalamus]
    tc = [proj for proj in onto_mapped if proj.pre in thalamus and proj.post in cortex]
    return CircuitParameters(
        populations, tau_ms, _weighted_mean(ct, [p.delay_ms for p in ct]), _weighted_mean(tc, [p.delay_ms for p in tc])
    )


def _weighted_mean(projections: list, values: list[float]) -> float | None:
    """Mean of ``values`` weighted by each projection's total conductance (nS); None without any."""
    weights = np.array([float(np.sum(proj.weight_nS)) for proj in projections])
    if not projections or weights.sum() <= 0:
        return None
    return float(np.dot(weights, values) / weights.sum())


def circuit_priors(brain, space: ParamSpace | None = None) -> ParamSpace:
    """The TCM parameter space (default: :func:`bridge_model`'s) with prior means set from the circuit:
    the receptor time constants ``T`` and the delays ``CT`` and ``TC`` (variances unchanged)."""
    space = bridge_model().space if space is None else space
    params = circuit_parameters(brain)
    means = {"T": np.array(space["T"].prior_mean)}
    for name, tau in params.tau_ms.items():
        means["T"][:, RECEPTORS[name][0]] = np.log(tau / K.TAU_MS[RECEPTORS[name][0]])
    if params.cortico_thalamic_delay_ms is not None:
        means["CT"] = np.log(params.cortico_thalamic_delay_ms / K.CT_MS)
    if params.thalamo_cortical_delay_ms is not None:
        means["TC"] = np.log(params.thalamo_cortical_delay_ms / K.TC_MS)
    specs = tuple(dataclasses.replace(s, prior_mean=means[s.name]) if s.name in means else s for s in space.specs)
    return ParamSpace(specs)

"""Pharmacological presets, defined once and applied to both scales.

A :class:`Drug` states its effect on the receptors and cells — factors at dose 1, raised to the
power ``dose`` (so dose acts linearly on the log-scale parameters of the mass model) — and two
methods translate it:

* ``nmda_on_inhibitory`` (NMDA conductance of inhibitory cells): TCM ``Hn[target ∈ SI, DI, RT]``
  += ln f; circuit: the NMDA conductance of the glutamatergic synapses onto inhibitory cells
  (``CortexConfig.e_to_i_nmda_weight_nS``, ``ThalamusConfig.relay_to_trn_nmda_weight_nS``) × f
  where the circuit has NMDA there, otherwise an AMPA stand-in, see below.
* ``gaba_a`` (GABA-A conductance): TCM ``global[2]`` (the GABA-A topology scale) += ln f; circuit:
  ``i_to_e_weight_nS``, ``i_to_i_weight_nS``, ``trn_to_relay_weight_nS``, ``trn_to_trn_weight_nS``,
  ``trn_to_ho_weight_nS``, ``trn_fo_to_ho_weight_nS`` × f.
* ``gaba_a_decay`` (GABA-A decay time constant): TCM ``T[:, 1]`` += ln f; circuit: the GABA-A decay
  of every cell, ``CortexConfig.gaba_a_tau_e_ms``, ``gaba_a_tau_i_ms`` and
  ``ThalamusConfig.gaba_a_tau_ms`` × f.
* ``cortical_drive`` (depolarising background drive of the cortex): TCM ``E`` of SS, SP, SI, DP, DI,
  TP += ln f; circuit: ``background_rate_hz`` × f.

**The NMDA stand-in.** The default circuit's glutamatergic synapses are AMPA only (its NMDA fields
are 0) and stand for the whole glutamatergic drive. Where a synapse group has no NMDA, and always
for L6a → TRN (a builder port with AMPA synapses only), an NMDA block by a factor f is applied as
the loss of the NMDA share s of that drive: AMPA weight × (1 − s·(1 − f)), with s =
:data:`NMDA_SHARE` = 0.5 — an assumption of the bridge, not a measurement.

Presets (:data:`PRESETS`): ``"ketamine"`` (NMDA antagonism on inhibitory cells), ``"benzodiazepine"``
(GABA-A potentiation: conductance), ``"propofol"`` (GABA-A potentiation: decay), ``"cholinergic"``
(cholinergic / noradrenergic gain: more depolarising drive to the cortex). Each states the spectral
change the literature reports (:class:`Expectation`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thalia._validation import check_option
from thalia.bridge.circuit import Circuit
from thalia.bridge.mapping import CORTICAL, INHIBITORY
from thalia.mass import tcm_constants as K
from thalia.params import ParameterSet

#: Share of the glutamatergic drive onto inhibitory cells carried by NMDA receptors (assumed).
NMDA_SHARE = 0.5
EFFECTS = ("nmda_on_inhibitory", "gaba_a", "gaba_a_decay", "cortical_drive")
#: Circuit config fields scaled by each effect: (component, field).
CIRCUIT_FIELDS = {
    "gaba_a": (
        ("cortex", "i_to_e_weight_nS"),
        ("cortex", "i_to_i_weight_nS"),
        ("thalamus", "trn_to_relay_weight_nS"),
        ("thalamus", "trn_to_trn_weight_nS"),
        ("thalamus", "trn_to_ho_weight_nS"),
        ("thalamus", "trn_fo_to_ho_weight_nS"),
    ),
    "gaba_a_decay": (
        ("cortex", "gaba_a_tau_e_ms"),
        ("cortex", "gaba_a_tau_i_ms"),
        ("thalamus", "gaba_a_tau_ms"),
    ),
    "cortical_drive": (("cortex", "background_rate_hz"),),
}
#: Glutamatergic synapses onto inhibitory cells: (component, NMDA conductance field or None, AMPA field).
#: L6a → TRN is a builder port with AMPA synapses only, so it has no NMDA field.
NMDA_SYNAPSES = (
    ("cortex", "e_to_i_nmda_weight_nS", "e_to_i_weight_nS"),
    ("thalamus", "relay_to_trn_nmda_weight_nS", "relay_to_trn_weight_nS"),
    ("thalamus", None, "l6a_weight_nS"),
)
#: Receptor -> index of its topology scale in the TCM's ``global`` (exp(global) multiplies the topology).
GLOBAL_INDEX = {"ampa": 0, "nmda": 1, "gaba_a": 2, "gaba_b": 3}
#: Effects the mass model can express (log scale, see :func:`shift_tcm`): a drug's four and the
#: conductance scales of the other receptors (what a refit may explain a drug's change by).
TCM_EFFECTS = ("ampa", "nmda", "gaba_a", "gaba_b", "gaba_a_decay", "nmda_on_inhibitory", "cortical_drive")


def shift_tcm(params: ParameterSet, effect: str, amount: float) -> ParameterSet:
    """The bridge model's parameters with one effect changed by ``amount`` (natural log of its factor).

    Effects (:data:`TCM_EFFECTS`): ``"ampa"``, ``"nmda"``, ``"gaba_a"``, ``"gaba_b"`` (``global[i]``,
    the receptor's topology scale, += amount); ``"gaba_a_decay"`` (``T[:, 1]``); ``"nmda_on_inhibitory"``
    (``Hn`` of every connection onto SI, DI and RT); ``"cortical_drive"`` (``E`` of SS, SP, SI, DP, DI, TP).
    """
    if not isinstance(params, ParameterSet) or "global" not in params.space:
        raise ValueError(
            "Invalid value for 'params': expected a ParameterSet of the bridge model "
            f"(thalia.bridge.bridge_model(), with the 'global' receptor scales), got {params!r}."
        )
    check_option("effect", effect, TCM_EFFECTS)
    if effect in GLOBAL_INDEX:
        name, index = "global", (GLOBAL_INDEX[effect],)
    elif effect == "gaba_a_decay":
        name, index = "T", (slice(None), 1)
    elif effect == "nmda_on_inhibitory":
        name, index = "Hn", ([K.POPULATIONS.index(pop) for pop in INHIBITORY],)
    else:
        name, index = "E", ([K.POPULATIONS.index(pop) for pop in CORTICAL],)
    value = params[name].clone()
    value[index] += amount
    return params.replace(**{name: value})


def effect_directions(space, effects=TCM_EFFECTS):
    """(P, n_effects) matrix U: the bridge model's parameter vector with effects δ is θ + U·δ."""
    zero = ParameterSet.from_vector(space, torch.zeros(len(space.vector_labels()), dtype=torch.float64))
    base = zero.to_vector()
    return torch.stack([shift_tcm(zero, effect, 1.0).to_vector() - base for effect in effects], dim=1)


@dataclass(frozen=True)
class Expectation:
    """A spectral change the literature reports: ``measure`` (a key of
    :func:`~thalia.bridge.compare.spectral_summary`) goes up (``sign`` +1) or down (−1)."""

    measure: str
    sign: int
    reference: str


@dataclass(frozen=True)
class Drug:
    """A drug's effects as factors at dose 1 (1 = no effect), its dose, and what the literature reports.

    Attributes
    ----------
    name : str
    nmda_on_inhibitory : float
        NMDA conductance of inhibitory cells (interneurons, TRN) × this.
    gaba_a : float
        GABA-A conductance × this.
    gaba_a_decay : float
        GABA-A decay time constant × this.
    cortical_drive : float
        Non-specific depolarising (background) drive of every cortical population × this.
    dose : float
        Every factor is raised to this power (0: no drug).
    expected : tuple of Expectation
    """

    name: str
    nmda_on_inhibitory: float = 1.0
    gaba_a: float = 1.0
    gaba_a_decay: float = 1.0
    cortical_drive: float = 1.0
    dose: float = 1.0
    expected: tuple[Expectation, ...] = ()

    def __post_init__(self) -> None:
        for effect in EFFECTS:
            value = getattr(self, effect)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"Invalid value for {effect!r} of drug {self.name!r}: expected a finite factor > 0, got {value!r}."
                )
        if isinstance(self.dose, bool) or not isinstance(self.dose, int | float) or not (0 <= self.dose < math.inf):
            raise ValueError(
                f"Invalid value for 'dose' of drug {self.name!r}: expected a finite number >= 0, got {self.dose!r}."
            )

    def factor(self, effect: str) -> float:
        """The factor of one effect at this dose."""
        check_option("effect", effect, EFFECTS)
        return float(getattr(self, effect)) ** float(self.dose)

    def at_dose(self, dose: float) -> Drug:
        """The same drug at another dose."""
        return dataclasses.replace(self, dose=dose)

    def apply_to_tcm(self, params: ParameterSet) -> ParameterSet:
        """The mass model's parameters under the drug (a parameter set of the bridge model, with ``global``)."""
        for effect in EFFECTS:
            params = shift_tcm(params, effect, math.log(self.factor(effect)))
        return params

    def apply_to_circuit(self, circuit: Circuit | None = None) -> Circuit:
        """The circuit's configuration under the drug (see the module doc for the fields)."""
        circuit = Circuit() if circuit is None else circuit
        scale = self.circuit_scales(circuit)
        changed = {}
        for component in ("thalamus", "cortex"):
            config = getattr(circuit, component)
            fields = {name: getattr(config, name) * s for (comp, name), s in scale.items() if comp == component}
            changed[component] = dataclasses.replace(config, **fields)
        return Circuit(**changed)

    def circuit_scales(self, circuit: Circuit | None = None) -> dict[tuple[str, str], float]:
        """(component, config field) -> the factor the drug multiplies it by in ``circuit`` (default:
        the default circuit; the NMDA block depends on which synapses have NMDA, see the module doc)."""
        circuit = Circuit() if circuit is None else circuit
        scale: dict[tuple[str, str], float] = {}
        factors = [(key, self.factor(effect)) for effect, keys in CIRCUIT_FIELDS.items() for key in keys]
        block = self.factor("nmda_on_inhibitory")
        for component, nmda, ampa in NMDA_SYNAPSES:
            if nmda is not None and getattr(getattr(circuit, component), nmda) > 0:
                factors.append(((component, nmda), block))
            else:  # no NMDA synapses here: the AMPA ones lose the NMDA share of the drive
                factors.append(((component, ampa), 1.0 - NMDA_SHARE * (1.0 - block)))
        for key, f in factors:
            scale[key] = scale.get(key, 1.0) * f
        return {key: s for key, s in scale.items() if s != 1.0}


def ketamine(dose: float = 1.0) -> Drug:
    """NMDA antagonism (ketamine-like): NMDA conductance of inhibitory cells halved at dose 1.

    NMDA antagonists act preferentially on fast-spiking interneurons, disinhibiting pyramidal cells
    (Homayoun & Moghaddam 2007, J Neurosci 27:11496). Sub-anaesthetic ketamine raises gamma power:
    in rat neocortex (Pinault 2008, Biol Psychiatry 63:730), human EEG (Hong et al. 2010,
    Neuropsychopharmacology 35:632) and MEG (Shaw et al. 2015, Eur Neuropsychopharmacol 25:1136).
    """
    reference = "Pinault 2008 Biol Psychiatry 63:730; Hong et al. 2010 Neuropsychopharmacology 35:632"
    return Drug("ketamine", nmda_on_inhibitory=0.5, dose=dose, expected=(Expectation("gamma_power", +1, reference),))


def benzodiazepine(dose: float = 1.0) -> Drug:
    """GABA-A potentiation (benzodiazepine / propofol-like): GABA-A conductance × 1.5 at dose 1.

    Stronger or longer GABA-A inhibition slows gamma: barbiturates that prolong IPSCs lower the
    frequency of interneuron-network gamma (Whittington, Traub & Jefferys 1995, Nature 373:612;
    Traub et al. 1996, J Physiol 493:471), and in interneuron-network models the frequency falls as
    the synaptic inhibition's conductance or decay grows (Wang & Buzsáki 1996, J Neurosci 16:6402).
    """
    reference = "Whittington et al. 1995 Nature 373:612; Wang & Buzsaki 1996 J Neurosci 16:6402"
    return Drug("benzodiazepine", gaba_a=1.5, dose=dose, expected=(Expectation("gamma_peak_hz", -1, reference),))


def propofol(dose: float = 1.0) -> Drug:
    """GABA-A potentiation by a longer decay (propofol / barbiturate-like): GABA-A decay × 1.5 at dose 1.

    Propofol and barbiturates prolong GABA-A IPSCs. Prolonging them lowers the frequency of gamma in
    hippocampal slices: pentobarbital (Whittington, Traub & Jefferys 1995, Nature 373:612), and
    propofol, thiopental and other general anaesthetics (Faulkner, Traub & Whittington 1998, Br J
    Pharmacol 125:483); the interneuron-network frequency falls as the IPSC decay grows (Whittington
    et al. 2000, Int J Psychophysiol 38:315; Wang & Buzsáki 1996, J Neurosci 16:6402).
    """
    reference = "Whittington et al. 1995 Nature 373:612; Faulkner et al. 1998 Br J Pharmacol 125:483"
    return Drug("propofol", gaba_a_decay=1.5, dose=dose, expected=(Expectation("gamma_peak_hz", -1, reference),))


def cholinergic(dose: float = 1.0) -> Drug:
    """Cholinergic / noradrenergic gain: depolarising drive to every cortical population × 1.2 at dose 1.

    Acetylcholine and noradrenaline depolarise cortical neurons and raise their excitability
    (McCormick 1992, Prog Neurobiol 39:337). Cholinergic activation and reticular (arousal)
    stimulation enhance cortical gamma (Munk et al. 1996, Science 272:271; Rodriguez et al. 2004,
    J Neurosci 24:10369).
    """
    reference = "Munk et al. 1996 Science 272:271; Rodriguez et al. 2004 J Neurosci 24:10369"
    return Drug("cholinergic", cortical_drive=1.2, dose=dose, expected=(Expectation("gamma_power", +1, reference),))


PRESETS: dict[str, Callable[[float], Drug]] = {
    "ketamine": ketamine,
    "benzodiazepine": benzodiazepine,
    "propofol": propofol,
    "cholinergic": cholinergic,
}


def preset(name: str, dose: float = 1.0) -> Drug:
    """A preset by name (``"ketamine"``, ``"benzodiazepine"``, ``"propofol"``, ``"cholinergic"``) at ``dose``."""
    return PRESETS[check_option("name", name, tuple(PRESETS))](dose)


__all__ = [
    "NMDA_SHARE",
    "TCM_EFFECTS",
    "PRESETS",
    "Drug",
    "Expectation",
    "benzodiazepine",
    "cholinergic",
    "effect_directions",
    "ketamine",
    "preset",
    "propofol",
    "shift_tcm",
]

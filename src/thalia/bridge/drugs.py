"""Pharmacological presets, defined once and applied to both scales.

A :class:`Drug` states its effect on the receptors and cells — factors at dose 1, raised to the
power ``dose`` (so dose acts linearly on the log-scale parameters of the mass model) — and two
methods translate it:

* ``nmda_on_inhibitory`` (NMDA conductance of inhibitory cells): TCM ``Hn[target ∈ SI, DI, RT]``
  += ln f; circuit: the glutamatergic synapses onto inhibitory cells (``e_to_i_weight_nS``,
  ``relay_to_trn_weight_nS``, ``l6a_weight_nS``) × (1 − s·(1 − f)), see below.
* ``gaba_a`` (GABA-A conductance): TCM ``global[2]`` (the GABA-A topology scale) += ln f; circuit:
  ``i_to_e_weight_nS``, ``i_to_i_weight_nS``, ``trn_to_relay_weight_nS``, ``trn_to_trn_weight_nS`` × f.
* ``gaba_a_decay`` (GABA-A decay time constant): TCM ``T[:, 1]`` += ln f; circuit: the same GABA-A
  weights × f, see below.
* ``cortical_drive`` (depolarising background drive of the cortex): TCM ``E`` of SS, SP, SI, DP, DI,
  TP += ln f; circuit: ``background_rate_hz`` × f.

Where the circuit lacks the knob:

* **NMDA.** The circuit's excitatory synapses are AMPA only and stand for the whole glutamatergic
  drive. An NMDA block by a factor f is applied as the loss of the NMDA share s of that drive,
  weight × (1 − s·(1 − f)), with s = :data:`NMDA_SHARE` = 0.5 — an assumption of the bridge, not a
  measurement. With NMDA synapses in the circuit (a per-projection NMDA conductance) it would not
  be needed.
* **GABA-A decay.** The circuit's cell presets fix the GABA-A decay; a decay change is applied as the
  same change of the IPSC charge (g·τ) through the weights, which keeps the charge but not the
  kinetics.

Presets (:data:`PRESETS`): ``"ketamine"`` (NMDA antagonism on inhibitory cells), ``"benzodiazepine"``
(GABA-A potentiation), ``"cholinergic"`` (cholinergic / noradrenergic gain: more depolarising drive
to the cortex). Each states the spectral change the literature reports (:class:`Expectation`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

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
    "nmda_on_inhibitory": (
        ("cortex", "e_to_i_weight_nS"),
        ("thalamus", "relay_to_trn_weight_nS"),
        ("thalamus", "l6a_weight_nS"),
    ),
    "gaba_a": (
        ("cortex", "i_to_e_weight_nS"),
        ("cortex", "i_to_i_weight_nS"),
        ("thalamus", "trn_to_relay_weight_nS"),
        ("thalamus", "trn_to_trn_weight_nS"),
    ),
    "cortical_drive": (("cortex", "background_rate_hz"),),
}
CIRCUIT_FIELDS["gaba_a_decay"] = CIRCUIT_FIELDS["gaba_a"]
GLOBAL_GABA_A = 2  # index of the GABA-A topology scale in the TCM's ``global``


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
        if not isinstance(params, ParameterSet) or "global" not in params.space:
            raise ValueError(
                "Invalid value for 'params': expected a ParameterSet of the bridge model "
                f"(thalia.bridge.bridge_model(), with the 'global' receptor scales), got {params!r}."
            )
        log = {effect: math.log(self.factor(effect)) for effect in EFFECTS}
        hn, glob, t, e = (params[name].clone() for name in ("Hn", "global", "T", "E"))
        inhibitory = [K.POPULATIONS.index(pop) for pop in INHIBITORY]
        hn[inhibitory] += log["nmda_on_inhibitory"]
        glob[GLOBAL_GABA_A] += log["gaba_a"]
        t[:, 1] += log["gaba_a_decay"]
        e[[K.POPULATIONS.index(pop) for pop in CORTICAL]] += log["cortical_drive"]
        return params.replace(Hn=hn, **{"global": glob}, T=t, E=e)

    def apply_to_circuit(self, circuit: Circuit | None = None) -> Circuit:
        """The circuit's configuration under the drug (see the module doc for the fields)."""
        circuit = Circuit() if circuit is None else circuit
        scale = self.circuit_scales()
        changed = {}
        for component in ("thalamus", "cortex"):
            config = getattr(circuit, component)
            fields = {name: getattr(config, name) * s for (comp, name), s in scale.items() if comp == component}
            changed[component] = dataclasses.replace(config, **fields)
        return Circuit(**changed)

    def circuit_scales(self) -> dict[tuple[str, str], float]:
        """(component, config field) -> the factor the drug multiplies it by."""
        scale: dict[tuple[str, str], float] = {}
        for effect in EFFECTS:
            f = self.factor(effect)
            if effect == "nmda_on_inhibitory":
                f = 1.0 - NMDA_SHARE * (1.0 - f)
            for key in CIRCUIT_FIELDS[effect]:
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
    "cholinergic": cholinergic,
}


def preset(name: str, dose: float = 1.0) -> Drug:
    """A preset by name (``"ketamine"``, ``"benzodiazepine"``, ``"cholinergic"``) at ``dose``."""
    return PRESETS[check_option("name", name, tuple(PRESETS))](dose)


__all__ = ["Drug", "Expectation", "PRESETS", "preset", "ketamine", "benzodiazepine", "cholinergic", "NMDA_SHARE"]

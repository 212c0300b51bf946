"""Cell types of the thalamo-cortical circuits, in physical units.

* **Pyramidal (regular-spiking)**: C 200 pF, g_L 10 nS (τ_m 20 ms), E_L −70, V_th −50, reset −60 mV,
  t_ref 2 ms — the generic cortical LIF of Brunel & Wang (2003) and Mazzoni et al. (2015).
* **Fast-spiking interneuron (PV basket)**: C 100 pF, g_L 10 nS (τ_m 10 ms), t_ref 1 ms.
* Synapses: AMPA decay 2 ms, GABA-A decay 6 ms onto pyramidal cells and 4 ms onto interneurons,
  E_GABA −75 mV (Bartos et al. 2007 for fast perisomatic inhibition; Mazzoni et al. 2015); NMDA (used
  only where a config sets an NMDA weight) decays in 100 ms with the Mg²⁺ block at 1 mM. Every
  preset takes ``gaba_a_tau_ms`` (the configs' GABA-A decay fields: drugs such as propofol prolong it).
* **Relay** and **TRN** cells: the integrate-and-fire-or-burst neuron of Smith et al. (2000)
  (:func:`thalia.spiking.neurons.ifb`), with a T-type Ca²⁺ current; TRN → relay GABA-A decays in
  8 ms (E −80 mV) and GABA-B in 150 ms (E −95 mV).

Every cell gets membrane noise (``noise_mV``) standing for the synaptic bombardment not modelled
explicitly; initial potentials are spread so that populations do not start in lock-step.
"""

from __future__ import annotations

from thalia.spiking.neurons import LIF, ifb


def pyramidal(noise_mV: float = 2.0, gaba_a_tau_ms: float = 6.0) -> LIF:
    return LIF(
        C_pF=200.0, g_leak_nS=10.0, E_leak_mV=-70.0, V_th_mV=-50.0, V_reset_mV=-60.0, t_ref_ms=2.0,
        tau_ms={"ampa": 2.0, "gaba_a": gaba_a_tau_ms}, E_rev_mV={"gaba_a": -75.0}, noise_mV=noise_mV,
        V_init_mV=-60.0, V_init_sd_mV=5.0,
    )  # fmt: skip


def interneuron(noise_mV: float = 2.0, gaba_a_tau_ms: float = 4.0) -> LIF:
    return LIF(
        C_pF=100.0, g_leak_nS=10.0, E_leak_mV=-70.0, V_th_mV=-50.0, V_reset_mV=-60.0, t_ref_ms=1.0,
        tau_ms={"ampa": 1.5, "gaba_a": gaba_a_tau_ms}, E_rev_mV={"gaba_a": -75.0}, noise_mV=noise_mV,
        V_init_mV=-60.0, V_init_sd_mV=5.0,
    )  # fmt: skip


def relay(noise_mV: float = 2.0, bias_pA: float = 0.0, gaba_a_tau_ms: float = 8.0) -> LIF:
    return ifb(
        noise_mV=noise_mV, tau_ms={"ampa": 2.0, "gaba_a": gaba_a_tau_ms, "gaba_b": 150.0},
        E_rev_mV={"gaba_a": -80.0, "gaba_b": -95.0}, I_bias_pA=bias_pA, t_ref_ms=1.0,
        V_init_mV=-62.0, V_init_sd_mV=3.0,
    )  # fmt: skip


def reticular(noise_mV: float = 2.0, bias_pA: float = 0.0, gaba_a_tau_ms: float = 8.0) -> LIF:
    return ifb(
        noise_mV=noise_mV, tau_ms={"ampa": 2.0, "gaba_a": gaba_a_tau_ms}, E_rev_mV={"gaba_a": -80.0},
        I_bias_pA=bias_pA, t_ref_ms=1.0, V_init_mV=-62.0, V_init_sd_mV=3.0,
    )  # fmt: skip

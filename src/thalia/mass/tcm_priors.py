"""The TCM parameter space: names, shapes, the stable default and the prior variances.

All parameters are log-scale multipliers with a Gaussian prior (tcm_model.md Part A §3). The prior
means are the **stable default** of thalia; the original defaults (all zeros) have an unstable
fixed point (a growing ~55 Hz mode), and with the element-wise delays more unstable modes still.

The stable default differs from the neutral values (all log-parameters 0) in two documented places:

* ``H`` = −1.5 everywhere: intrinsic AMPA and GABA-A (and, through ``Gb`` = 0, not GABA-B) gains
  exp(−1.5) ≈ 0.22 of the original topology values — a weakly recurrent column;
* ``E`` = 1.0 for every population: background drive 0.8·e ≈ 2.2 instead of 0.8 — an input-driven
  operating point.

With these every population sits near its firing threshold (V* from −53.5 to −43 mV, RT the most
depolarised), the fixed point is stable without delays (leading eigenvalue −3.6 s⁻¹) and with the
delays applied (no root of det(sI − A∘e^{−sD}) in the right half-plane, see
:func:`thalia.mass.stability.count_unstable_roots`; the rightmost oscillatory root is
−51 ± 2πi·38.6 s⁻¹), and the spectrum has a damped gamma resonance near 37 Hz over a 1/f
background, which the thalamo-cortical delays CT and TC move. A search over changes to the
background drive, time constants, capacitance, leak and delays (thalia's development notes) found
that the other single-mechanism fixes either silence the pyramidal cells (strong interneuron drive:
stable, but V* ≈ −81 mV and inert cortex) or leave delay-induced instabilities from the
self-inhibitory loops; this pair keeps the circuit responsive. 40 draws from the prior around it
were all stable with their delays.

Prior variances: 1/8 on the H and Hn entries of the 2023 prior file (Part B §3.4 ``priors.mat``),
on L and on the spectral parameters a, b, c; 1/64 on CT, TC and T, and on the GABA-B gains Gb of the
2025 scripts. The channel-noise amplitudes b₀ and c₀ have prior mean −4 (SPM uses 0 on data
normalised to unit power; the TCM's output scale is set by exp(L) and the innovations instead), so
that channel noise is about 1 % of the default spectrum. The 2023 H mask lists DI←SI, which has no
AMPA or GABA topology entry and would be inert; it is dropped (every free parameter has an
effect). Hh is only used by TP and RC. The H-channel rate T[:, 5] is fixed: around −45 mV the H gate
h(V) = 1 − σ(2/3 (V + 30)) is saturated (h ≈ 1, h' ≈ 1e-5), so that rate does not move the spectrum.
"""

from __future__ import annotations

import numpy as np

from thalia.mass import tcm_constants as K
from thalia.params import ParamSpace, ParamSpec

ABSENT = -32.0  # log-scale value of an absent extrinsic connection
PRESENT_VAR = 1 / 8
#: Prior mean of the log amplitude of the channel noise (b₀, c₀): exp(−4 − 2) ≈ 0.25 % of unit
#: 1/f power, so that the default spectrum is the neural signal's (about 1 % channel noise).
NOISE_LOG_AMPLITUDE = -4.0
SMALL_VAR = 1 / 64

#: Stable default: background drive E (all populations) and intrinsic AMPA/GABA-A gains H.
DEFAULT_E = 1.0
DEFAULT_H = -1.5

_H_FREE = {  # 2023 priors.mat H mask (DI←SI dropped: no topology entry)
    "SS": ["RC"],
    "SP": ["SS", "SP", "SI"],
    "SI": ["SP", "SI"],
    "DP": ["SP", "DI"],
    "TP": ["DP", "DI"],
    "RC": ["SS", "TP", "RT"],
}
_HN_FREE = {
    "SS": ["RC"],
    "SP": ["SS", "SP", "SI"],
    "SI": ["SP", "SI"],
    "DP": ["SP"],
    "TP": ["DP"],
    "RC": ["SS", "TP"],
}
_GB_FREE = {
    "SS": ["SS"],
    "SP": ["SP", "SI"],
    "SI": ["SI"],
    "DP": ["DP", "DI"],
    "DI": ["DI"],
    "TP": ["DI", "TP"],
    "RC": ["RT"],
}

#: Optional parameters, added with ``TCM(extras=...)``: name -> (shape, mean, variance, doc).
EXTRAS = {
    "endo": ((), 0.0, 0.0, "extra SP AMPA drive 2·exp(endo) (tcm_py's `endo`)"),
    "thi": ((), 0.0, 0.0, "extra relay drive exp(thi) onto RC AMPA and NMDA"),
    "global": ((4,), 0.0, 0.0, "scales of the AMPA, NMDA, GABA-A, GABA-B topologies, exp(global)"),
    "T1": ((2,), 0.0, 0.0, "additive AMPA / NMDA rate offsets (linear, s^-1)"),
}


def _mask(entries: dict[str, list[str]], ns: int, value: float) -> np.ndarray:
    idx = {name: i for i, name in enumerate(K.POPULATIONS)}
    out = np.zeros((8, 8, ns))
    for target, sources in entries.items():
        for source in sources:
            out[idx[target], idx[source], :] = value
    return out


def build_space(
    ns: int,
    n_channels: int,
    a_mask: np.ndarray,
    an_mask: np.ndarray,
    extras: tuple[str, ...] = (),
) -> ParamSpace:
    """The TCM parameter space for ``ns`` sources and ``n_channels`` observed channels.

    ``a_mask`` / ``an_mask`` (5, ns, ns) bool mark the extrinsic connections that exist
    ([afferent type j, target source, source source]); present ones have prior mean 0 (gain 1) and
    variance 1/8, absent ones −32 (off) and variance 0.
    """
    j_mean = np.full(56, K.UNOBSERVED)
    j_mean[:8] = np.log(K.OBSERVATION_WEIGHTS)
    specs = [
        ParamSpec("A", (5, ns, ns), np.where(a_mask, 0.0, ABSENT), np.where(a_mask, PRESENT_VAR, 0.0),
                  "extrinsic AMPA gains exp(A)[j, target, source]; j: SP fwd, DP bwd, TP, RT, RC"),
        ParamSpec("AN", (5, ns, ns), np.where(an_mask, 0.0, ABSENT), np.where(an_mask, PRESENT_VAR, 0.0),
                  "extrinsic NMDA gains exp(AN), same layout as A (no reciprocal damping)"),
        ParamSpec("C", (ns,), 0.0, 0.0, "exogenous input / innovation gain exp(C) per source"),
        ParamSpec("H", (8, 8, ns), DEFAULT_H, _mask(_H_FREE, ns, PRESENT_VAR),
                  "intrinsic AMPA and GABA-A gains exp(H)[target, source, region]"),
        ParamSpec("Hn", (8, 8, ns), 0.0, _mask(_HN_FREE, ns, PRESENT_VAR),
                  "intrinsic NMDA gains exp(Hn)[target, source, region]"),
        ParamSpec("Gb", (8, 8, ns), 0.0, _mask(_GB_FREE, ns, SMALL_VAR),
                  "intrinsic GABA-B gains exp(Gb)[target, source, region]"),
        ParamSpec("T", (ns, 6), 0.0, np.array([SMALL_VAR] * 5 + [0.0]),
                  "rate scales: K = exp(-T)·1000/tau for AMPA, GABA-A, NMDA, GABA-B, M, H"),
        ParamSpec("Mh", (8,), 0.0, 0.0, "M-channel gains: target 4·exp(Mh)·m(V)"),
        ParamSpec("Hh", (8,), 0.0, 0.0, "H-channel gains: target 4·exp(Hh)·h(V), TP and RC only"),
        ParamSpec("CV", (8,), 0.0, 0.0, "capacitance scales exp(CV)"),
        ParamSpec("S", (8,), 0.0, 0.0, "firing thresholds VR = -52 + exp(S) mV"),
        ParamSpec("E", (8,), DEFAULT_E, 0.0, "background drive 0.8·exp(E) onto AMPA and NMDA"),
        ParamSpec("leak", (), 0.0, 0.0, "leak conductance GL = exp(leak)"),
        ParamSpec("scale_NMDA", (), 0.0, 0.0, "Mg-block slope 0.062·exp(scale_NMDA) per mV"),
        ParamSpec("CT", (), 0.0, SMALL_VAR, "cortico-thalamic delay 8·exp(CT) ms", "log"),
        ParamSpec("TC", (), 0.0, SMALL_VAR, "thalamo-cortical delay 3·exp(TC) ms", "log"),
        ParamSpec("ID", (8,), 0.0, 0.0, "intra-population delays [2 1 1 1 1 2 1 2]·exp(ID) ms"),
        ParamSpec("J", (56,), j_mean, 0.0,
                  "observation log-weights of each source's 56 states (-1000 = not observed)"),
        ParamSpec("L", (ns,), 0.0, PRESENT_VAR, "source gain exp(L) onto the channels"),
        ParamSpec("a", (2, ns), 0.0, PRESENT_VAR, "innovations Gu = exp(a0)·f^-exp(a1) per source"),
        ParamSpec("b", (2,), [NOISE_LOG_AMPLITUDE, 0.0], PRESENT_VAR,
                  "common channel noise Gn = exp(b0-2)·f^-exp(b1)"),
        ParamSpec("c", (2, n_channels), np.array([[NOISE_LOG_AMPLITUDE], [0.0]]), PRESENT_VAR,
                  "channel-specific noise Gs = exp(c0-2)·f^-exp(c1)"),
    ]  # fmt: skip
    for name in extras:
        shape, mean, var, doc = EXTRAS[name]
        specs.append(ParamSpec(name, shape, mean, var, doc))
    return ParamSpace(tuple(specs))


def prior_table_markdown(space: ParamSpace) -> str:
    """The prior table as Markdown: one row per parameter array (mean/variance ranges, free count)."""
    rows = [
        "| name | shape | prior mean | prior variance | free entries | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for spec in space.specs:
        mean, var = spec.prior_mean, spec.prior_var
        mean_text = _range_text(mean)
        var_text = _range_text(var[var > 0]) if (var > 0).any() else "0"
        rows.append(
            f"| `{spec.name}` | {spec.shape} | {mean_text} | {var_text} | {int((var > 0).sum())} / {spec.size} "
            f"| {spec.doc} |"
        )
    return "\n".join(rows) + "\n"


def _range_text(values: np.ndarray) -> str:
    values = np.unique(np.round(np.asarray(values, dtype=float), 4))
    if values.size == 0:
        return "—"
    if values.size <= 3:
        return ", ".join(f"{v:g}" for v in values)
    return f"{values.min():g} … {values.max():g}"


def free_entries_markdown(space: ParamSpace) -> str:
    """The free (variance > 0) entries, one line per array, with their labels."""
    lines = []
    labels = np.array(space.vector_labels())
    var = space.prior_var_vector().numpy()
    for spec in space.specs:
        block = space.slice_of(spec.name)
        chosen = labels[block][var[block] > 0]
        if chosen.size:
            lines.append(f"- `{spec.name}` ({chosen.size}): " + ", ".join(f"`{c}`" for c in chosen))
    return "\n".join(lines) + "\n"

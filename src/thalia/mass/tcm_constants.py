"""Constants of the TCM flow (tcm_model.md Part B §1–§2): populations, states, topology, kinetics.

Matrices are indexed [target, source] in the population order SS SP SI DP DI TP RT RC.
"""

from __future__ import annotations

import numpy as np

POPULATIONS = ("SS", "SP", "SI", "DP", "DI", "TP", "RT", "RC")
POPULATION_DOCS = {
    "SS": "L4 spiny stellate (granular input), excitatory",
    "SP": "L2/3 superficial pyramidal (forward output), excitatory",
    "SI": "L2/3 superficial interneurons, inhibitory",
    "DP": "L5 deep pyramidal (backward output), excitatory",
    "DI": "L5 deep interneurons, inhibitory",
    "TP": "L6 thalamic-projection pyramidal, excitatory",
    "RT": "thalamic reticular nucleus, inhibitory",
    "RC": "thalamic relay (thalamo-cortical), excitatory",
}
STATES = ("V", "AMPA", "GABAA", "NMDA", "GABAB", "M", "H")
N_POP = len(POPULATIONS)
N_STATE = len(STATES)
CONDUCTANCES = STATES[1:]

_IDX = {name: i for i, name in enumerate(POPULATIONS)}


def _matrix(entries: dict[str, dict[str, float]]) -> np.ndarray:
    out = np.zeros((N_POP, N_POP))
    for target, sources in entries.items():
        for source, value in sources.items():
            out[_IDX[target], _IDX[source]] = value
    return out


#: AMPA topology (value 2 on every connection).
G_EA = _matrix(
    {
        "SS": {"TP": 2, "RC": 2},
        "SP": {"SS": 2, "SP": 2},
        "SI": {"SP": 2},
        "DP": {"SP": 2},
        "DI": {"DP": 2},
        "TP": {"DP": 2},
        "RT": {"RC": 2},
        "RC": {"SS": 2, "TP": 2},
    }
)
#: NMDA topology: AMPA's plus SP←SI and SI←SI (as in the original code).
G_EN = G_EA + _matrix({"SP": {"SI": 2}, "SI": {"SI": 2}})
#: GABA-A topology; GABA-B uses the same matrix.
G_IA = _matrix(
    {
        "SS": {"SS": 8, "SI": 10},
        "SP": {"SP": 18, "SI": 10},
        "SI": {"SI": 10},
        "DP": {"DP": 8, "DI": 6},
        "DI": {"DI": 14},
        "TP": {"DI": 6, "TP": 8},
        "RT": {"RT": 8},
        "RC": {"RT": 8, "RC": 8},
    }
)
G_IB = G_IA.copy()

#: Extrinsic afferent j = 0..4 is carried by the firing of these populations (SP fwd, DP bwd, TP, RT, RC).
EXTRINSIC_SOURCES = (_IDX["SP"], _IDX["DP"], _IDX["TP"], _IDX["RT"], _IDX["RC"])
#: Routing of the 5 extrinsic afferents onto target populations (values 1/8). The original routes
#: a5 → RT and a4 → RC as well but then zeroes columns 3–5 ("ketamine study restriction").
EXTRINSIC_ROUTING = np.zeros((N_POP, 5))
EXTRINSIC_ROUTING[_IDX["SS"], 0] = 1 / 8
EXTRINSIC_ROUTING[_IDX["SP"], 1] = 1 / 8
EXTRINSIC_ROUTING[_IDX["SI"], 1] = 1 / 8
#: Reciprocal damping: an A entry whose transpose entry also exceeds this is divided by 9.
RECIPROCAL_THRESHOLD = float(np.exp(-8.0))

#: Reversal potentials (mV) of leak and of the six conductances in state order.
V_LEAK_MV = -70.0
V_REV_MV = np.array([60.0, -90.0, 10.0, -100.0, -52.0, -30.0])
#: Membrane capacitance before exp(CV) scaling (as in the original, units such that dV/dt is mV/s).
CAPACITANCE = np.array([384, 128, 64, 128, 64, 128, 64, 128]) / 1000.0
#: Time constants (ms) of AMPA, GABA-A, NMDA, GABA-B, M, H.
TAU_MS = np.array([2.2, 5.0, 100.0, 300.0, 160.0, 100.0])

#: Firing threshold VR = -52 + exp(S) mV; slope 2/3 per mV; upper cut-off at +30 mV.
V_THRESHOLD_BASE_MV = -52.0
FIRING_SLOPE = 2.0 / 3.0
V_CUTOFF_MV = 30.0
#: H-gate h(V) = 1 - sigmoid(2/3 (V - V_H)); H current only in TP and RC.
H_GATE_V_MV = -30.0
H_CHANNEL_POPULATIONS = np.array([0, 0, 0, 0, 0, 1, 0, 1], dtype=float)
M_GAIN = 4.0
H_GAIN = 4.0
#: Background drive 0.8 exp(E) onto AMPA and NMDA targets; excitatory targets doubled.
BACKGROUND = 0.8
EXCITATORY_TARGET_GAIN = 2.0
#: Mg block B(V) = 1 / (1 + 0.2 exp(-0.062 exp(scale_NMDA) V)).
MG_A = 0.2
MG_SLOPE = 0.062

#: Delays (ms): cortico-thalamic 8 exp(CT), thalamo-cortical 3 exp(TC), intra-population ID.
CT_MS = 8.0
TC_MS = 3.0
ID_MS = np.array([2, 1, 1, 1, 1, 2, 1, 2], dtype=float)
CORTICAL = slice(0, 6)
THALAMIC = slice(6, 8)

#: Observation weights on the membrane potentials of SS…RC (Part A §6).
OBSERVATION_WEIGHTS = np.array([0.2, 0.99, 0.1, 0.8, 0.1, 0.2, 0.05, 0.1])
#: Log weight meaning "not observed" (exp(-1000) == 0 in float64).
UNOBSERVED = -1000.0

#: tcm_py's template state (Part B §1.5), shape (8 populations, 7 states).
TEMPLATE_STATE = np.array(
    [
        [-52.0007, 4.2965, 5.3863, 4.3279, 5.3863, 1.3566, 0.0],
        [-53.7096, 3.5260, 5.2125, 4.6363, 5.2125, 0.5643, 0.0],
        [-52.5124, 2.1694, 2.6731, 3.2798, 2.6731, 1.0693, 0.0],
        [-53.2265, 2.1643, 2.7433, 2.1643, 2.7433, 0.7391, 0.0],
        [-52.9797, 2.3391, 2.9519, 2.3391, 2.9519, 0.8434, 0.0],
        [-52.0864, 2.3391, 3.8767, 2.3391, 3.8767, 1.3058, 4.0],
        [-51.3178, 2.9868, 3.5779, 2.9868, 3.5779, 1.7889, 0.0],
        [-51.9504, 4.2624, 6.3515, 4.2624, 6.3515, 1.3868, 4.0],
    ]
)

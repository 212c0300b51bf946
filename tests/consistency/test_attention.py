"""Attention through topographic L6 feedback (system spec Part A §7).

A cue drives the ``attention`` port of the cortex (L6a and L6b pyramidal cells) in the columns of a
chosen stretch of the sheet. Because the L6 feedback is topographic, L6a → relay excites the relay
cells of the attended channels, while L6a → TRN ⊣ relay inhibits, through the TRN's wider reach,
the relay channels around them (L6b drives the higher-order relay cells, not measured here). Compared
with the same circuit and seed without the cue, the attended relay cells fire more and the unattended
channels beside them fire less, by more than the seed-to-seed spread of the effect.
"""

import numpy as np
import pytest
import torch

from thalia.spiking.builder import BrainBuilder, GlobalConfig

pytestmark = pytest.mark.slow

N_RELAY = 128
N_CUE = 64
ATTENDED = (0.45, 0.55)  # part of the sheet the cue attends (fraction of the relay map)
UNATTENDED = ((0.25, 0.35), (0.65, 0.75))  # channels 0.2 away from the attended centre on both sides
CUE_RATE_HZ = 100.0
SEEDS = (1, 2, 3, 4)
DURATION_MS = 2000.0
WARMUP_MS = 300.0


def _relay_rates(seed: int, attend: bool) -> np.ndarray:
    """Per relay cell rate (Hz) after the warm-up, with or without the cue."""
    builder = BrainBuilder(GlobalConfig(dt_ms=0.1, seed=seed))
    builder.add_component("sensory", "sensory_pathway", n_output=128)
    builder.add_component("cue", "sensory_pathway", n_output=N_CUE, spontaneous_rate_hz=0.0)
    builder.add_component("thalamus", "thalamus", n_input=128, n_output=N_RELAY)
    builder.add_component("cortex", "cortex", n_output=256)
    builder.connect("sensory", "thalamus")
    builder.connect("thalamus", "cortex")
    builder.connect("cortex", "thalamus", source_port="l6")
    builder.connect("cue", "cortex", target_port="attention")
    brain = builder.build()
    cue = torch.zeros(N_CUE)
    if attend:
        x = (np.arange(N_CUE) + 0.5) / N_CUE
        cue[torch.from_numpy((x >= ATTENDED[0]) & (x < ATTENDED[1]))] = CUE_RATE_HZ
    result = brain.run(WARMUP_MS + DURATION_MS, {"cue": cue, "sensory": torch.zeros(128)})
    times, ids = result.spikes("thalamus.relay")
    counts = np.bincount(ids[times > WARMUP_MS], minlength=N_RELAY)
    return counts / (DURATION_MS / 1000.0)


def _mean_over(rates: np.ndarray, stretches) -> float:
    x = (np.arange(rates.size) + 0.5) / rates.size
    mask = np.zeros(rates.size, dtype=bool)
    for lo, hi in stretches:
        mask |= (x >= lo) & (x < hi)
    return float(rates[mask].mean())


def test_attention_amplifies_attended_and_suppresses_unattended_relay_channels():
    gain, loss = [], []
    for seed in SEEDS:
        on, off = _relay_rates(seed, True), _relay_rates(seed, False)
        gain.append(_mean_over(on, [ATTENDED]) - _mean_over(off, [ATTENDED]))
        loss.append(_mean_over(off, UNATTENDED) - _mean_over(on, UNATTENDED))
    gain, loss = np.array(gain), np.array(loss)
    # every seed shows both effects, and their mean exceeds twice the seed-to-seed SD
    assert np.all(gain > 0) and gain.mean() > 2 * gain.std(ddof=1), gain
    assert np.all(loss > 0) and loss.mean() > 2 * loss.std(ddof=1), loss

"""The dual-gamma measurement of the default circuit: Welch spectra against an aperiodic fit.

:func:`measure` builds the ``"thalamocortical"`` preset (optionally without one feedback loop, or with
other loop delays), runs it, discards a warm-up, and measures, in the population rate of the relay
cells (1 ms bins), the low-gamma (25–35 Hz) and high-gamma (60–80 Hz) peaks over the aperiodic fit
(:func:`thalia.spectra.peaks.band_peak`).
"""

from __future__ import annotations

import time

from thalia.spectra.peaks import band_peak, welch_power
from thalia.spiking.builder import BrainBuilder, GlobalConfig

BANDS = {"low_gamma": (25.0, 35.0), "high_gamma": (60.0, 80.0)}
LOOPS = ("intact", "no_l6a", "no_l6b")


def build(
    loops: str = "intact", *, dt_ms: float = 0.1, seed: int = 0, l6a_delay_ms=None, l6b_delay_ms=None,
    thalamus=None, cortex=None,
):  # fmt: skip
    """The default circuit with both loops (``"intact"``) or one removed (``"no_l6a"``, ``"no_l6b"``)."""
    if loops not in LOOPS:
        raise ValueError(f"Invalid value for 'loops': allowed {list(LOOPS)}, got {loops!r}.")
    builder = BrainBuilder(GlobalConfig(dt_ms=dt_ms, seed=seed))
    builder.add_component("sensory", "sensory_pathway", n_output=128)
    builder.add_component("thalamus", "thalamus", n_input=128, n_output=128, **(thalamus or {}))
    builder.add_component("cortex", "cortex", n_output=256, **(cortex or {}))
    builder.connect("sensory", "thalamus")
    builder.connect("thalamus", "cortex")
    if loops != "no_l6a":
        builder.connect("cortex", "thalamus", source_port="l6a", axonal_delay_ms=l6a_delay_ms)
    if loops != "no_l6b":
        builder.connect("cortex", "thalamus", source_port="l6b", axonal_delay_ms=l6b_delay_ms)
    return builder.build()


def measure(loops: str = "intact", *, duration_ms: float = 3000.0, warmup_ms: float = 500.0, **options) -> dict:
    """Peaks (Hz, prominence in log10 units over the aperiodic fit; None when absent) and rates."""
    brain = build(loops, **options)
    start = time.perf_counter()
    result = brain.run(warmup_ms + duration_ms)
    wall = time.perf_counter() - start
    t, rate = result.population_rate("thalamus.relay", bin_ms=1.0)
    signal = rate[t > warmup_ms]
    freqs, power = welch_power(signal - signal.mean(), 1000.0, segment_s=0.256)
    out = {"loops": loops, "wall_s": wall}
    for name, band in BANDS.items():
        peak = band_peak(freqs, power, band)
        out[f"{name}_peak_hz"] = peak.freq_hz if peak.present else None
        out[f"{name}_prominence"] = peak.prominence if peak.present else None
    out["rates_hz"] = {name: result.rate_hz(name) for name in result.populations}
    out["spectrum"] = {"freqs_hz": freqs.tolist(), "power": power.tolist()}
    return out

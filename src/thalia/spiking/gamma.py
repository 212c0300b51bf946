"""The dual-gamma measurement of the default circuit: Welch spectra against an aperiodic fit.

:func:`measure` builds the default thalamo-cortical circuit (the ``"thalamocortical"`` preset's
components; optionally without one feedback loop, with other loop delays or scaled in size), runs it,
discards a warm-up, and measures the low-gamma (25–35 Hz) and high-gamma (60–80 Hz) peaks over the
aperiodic (1/f) fit (:func:`thalia.spectra.peaks.band_peak`).

The signals (:data:`SIGNALS`) are population rates in 1 ms bins: ``"thalamus"``, the rate of all
thalamocortical cells (first-order ``relay`` and higher-order ``relay_ho``: what the thalamus sends
to the cortex, the top-level peaks of :func:`measure`), and each relay nucleus alone (``"relay"``,
``"relay_ho"``), which is where each loop passes: L6a → TRN ⊣ relay (and L6a → relay) through the
first-order cells, L6b → relay_ho through the higher-order ones. Each loop's rhythm is measured in the
nucleus it passes through, as a recording from that nucleus would; in the summed rate the two rhythms
mask each other's peak over the aperiodic fit on some seeds (docs/circuits.md). The cortical
populations of the model are small (64 L6a and 64 L6b cells by default) and their rates are noisier.
"""

from __future__ import annotations

import time

from thalia.spectra.peaks import aperiodic_fit, band_peak, welch_power
from thalia.spiking.builder import BrainBuilder, GlobalConfig

BANDS = {"low_gamma": (25.0, 35.0), "high_gamma": (60.0, 80.0)}
LOOPS = ("intact", "no_l6a", "no_l6b")
#: measured signals: name -> populations whose summed rate it is (absent populations are skipped)
SIGNALS = {
    "thalamus": ("thalamus.relay", "thalamus.relay_ho"),
    "relay": ("thalamus.relay",),
    "relay_ho": ("thalamus.relay_ho",),
}
#: sizes of the default circuit: sensory and relay cells, cortical L2/3 pyramidal cells
SIZES = {"sensory": 128, "thalamus": 128, "cortex": 256}
#: Welch segment (s): 0.256 s gives 3.9 Hz bins, two to three per band
SEGMENT_S = 0.256
_PEAK_KEYS = tuple(f"{band}_{what}" for band in BANDS for what in ("peak_hz", "prominence"))


def build(
    loops: str = "intact", *, dt_ms: float = 0.1, seed: int = 0, l6a_delay_ms=None, l6b_delay_ms=None,
    thalamus=None, cortex=None, scale: int = 1,
):  # fmt: skip
    """The default circuit with both loops (``"intact"``) or one removed (``"no_l6a"``, ``"no_l6b"``).

    ``scale`` multiplies every population size (an integer >= 1); ``thalamus`` and ``cortex`` are
    dicts of config fields; the delays (ms) default to ``thalia.spiking.regions.DEFAULT_DELAY_MS``.
    """
    if loops not in LOOPS:
        raise ValueError(f"Invalid value for 'loops': allowed {list(LOOPS)}, got {loops!r}.")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"Invalid value for 'scale': expected an integer >= 1, got {scale!r}.")
    n = {name: size * scale for name, size in SIZES.items()}
    builder = BrainBuilder(GlobalConfig(dt_ms=dt_ms, seed=seed))
    builder.add_component("sensory", "sensory_pathway", n_output=n["sensory"])
    builder.add_component("thalamus", "thalamus", n_input=n["sensory"], n_output=n["thalamus"], **(thalamus or {}))
    builder.add_component("cortex", "cortex", n_output=n["cortex"], **(cortex or {}))
    builder.connect("sensory", "thalamus")
    builder.connect("thalamus", "cortex")
    if loops != "no_l6a":
        builder.connect("cortex", "thalamus", source_port="l6a", axonal_delay_ms=l6a_delay_ms)
    if loops != "no_l6b":
        builder.connect("cortex", "thalamus", source_port="l6b", axonal_delay_ms=l6b_delay_ms)
    return builder.build()


def band_peaks(freqs, power) -> tuple[str, dict]:
    """(aperiodic mode, band name -> :class:`~thalia.spectra.peaks.PeakResult`) of a spectrum, over
    its aperiodic fit: with a knee (4–150 Hz), or a plain 1/f^χ fit where FOOOF cannot fit a knee."""
    try:
        fit = aperiodic_fit(freqs, power)
    except RuntimeError:  # FOOOF's knee fit does not always converge on 3 s of a spiking rate
        fit = aperiodic_fit(freqs, power, knee=False)
    return fit.mode, {name: band_peak(freqs, power, band, aperiodic=fit) for name, band in BANDS.items()}


def peaks(rate_hz, bin_ms: float = 1.0) -> dict:
    """Low- and high-gamma peak (Hz, prominence in log10 units over the aperiodic fit; None when
    absent) of a population rate (Hz, one value per bin of ``bin_ms``), and its spectrum
    (:func:`band_peaks`; ``aperiodic_mode`` says which fit was used)."""
    fs = 1000.0 / bin_ms
    freqs, power = welch_power(rate_hz - rate_hz.mean(), fs, segment_s=SEGMENT_S)
    mode, found = band_peaks(freqs, power)
    out = {"aperiodic_mode": mode}
    for name, peak in found.items():
        out[f"{name}_peak_hz"] = peak.freq_hz if peak.present else None
        out[f"{name}_prominence"] = peak.prominence if peak.present else None
    out["spectrum"] = {"freqs_hz": freqs.tolist(), "power": power.tolist()}
    return out


def summed_rate(result, populations, bin_ms: float = 1.0):
    """(bin centres ms, rate Hz per cell) of the union of those ``populations`` that ``result`` has;
    None when it has none of them."""
    names = [p for p in populations if p in result.populations]
    if not names:
        return None
    total, n = 0.0, 0
    for name in names:
        t, rate = result.population_rate(name, bin_ms=bin_ms)
        size = result.populations[name].stop - result.populations[name].start
        total, n = total + rate * size, n + size
    return t, total / n


def measure(loops: str = "intact", *, duration_ms: float = 3000.0, warmup_ms: float = 500.0, **options) -> dict:
    """Peaks (see :func:`peaks`) of the ``"thalamus"`` signal at the top level and of every signal of
    :data:`SIGNALS` under ``"signals"`` (name -> band peaks, without the spectrum; peaks None for a
    silent population), every population's mean rate (Hz, after the warm-up) and the wall time (s) of
    the simulation; ``options`` go to :func:`build`."""
    brain = build(loops, **options)
    start = time.perf_counter()
    result = brain.run(warmup_ms + duration_ms)
    wall = time.perf_counter() - start
    signals = {}
    for name, populations in SIGNALS.items():
        summed = summed_rate(result, populations)
        if summed is None:
            continue
        t, rate = summed
        rate = rate[t > warmup_ms]
        silent = not rate.any()
        signals[name] = {k: None for k in _PEAK_KEYS} if silent else peaks(rate)
    out = {"loops": loops, "wall_s": wall, **signals["thalamus"]}
    out["signals"] = {name: {k: v for k, v in p.items() if k in _PEAK_KEYS} for name, p in signals.items()}
    seconds = duration_ms / 1000.0
    rates = {}
    for name, sl in result.populations.items():
        times, _ = result.spikes(name)
        rates[name] = float((times > warmup_ms).sum()) / (sl.stop - sl.start) / seconds
    out["rates_hz"] = rates
    return out

"""The spiking side of the bridge: run the default thalamo-cortical circuit and take its LFP spectrum.

The circuit is :func:`thalia.spiking.gamma.build` (sensory → thalamus ⇄ cortex with the L6a → TRN
and L6b → relay loops), configured by a :class:`~thalia.spiking.regions.ThalamusConfig` and a
:class:`~thalia.spiking.regions.CortexConfig` (change fields with ``dataclasses.replace``). Only the
fields that differ from the dataclass defaults are handed to the builder, so a circuit built here
follows the defaults of the spiking package.

The LFP proxy is Mazzoni et al. (2015)'s (:meth:`~thalia.spiking.engine.SimulationResult.lfp`): the
AMPA current 6 ms earlier minus 1.65 × the GABA-A current, summed over the pyramidal cells of a
layer. Channels: ``"cortex"`` (the region: L2/3 + L5, the populations whose currents the circuit
records) or the layers ``"L2/3"`` and ``"L5"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from thalia._validation import check_option, check_positive_float
from thalia.spectra import CSD, welch_csd
from thalia.spiking.gamma import build
from thalia.spiking.regions import CortexConfig, ThalamusConfig

#: LFP channel -> cortical layer roles whose pyramidal currents it sums.
LAYER_CHANNELS = {"L2/3": ("l23_e",), "L5": ("l5_e",)}
CHANNEL_SETS = ("region", "layers")


@dataclass(frozen=True)
class Circuit:
    """A configuration of the default circuit: thalamus and cortex configs (defaults: the package's)."""

    thalamus: ThalamusConfig = field(default_factory=ThalamusConfig)
    cortex: CortexConfig = field(default_factory=CortexConfig)

    def __post_init__(self) -> None:
        for name, cls in (("thalamus", ThalamusConfig), ("cortex", CortexConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"Invalid value for {name!r}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}."
                )

    def overrides(self) -> dict[str, dict]:
        """The fields of each config that differ from the dataclass defaults (what the builder gets)."""
        return {name: _changed(getattr(self, name)) for name in ("thalamus", "cortex")}

    def build(self, *, seed: int = 0, dt_ms: float = 0.1):
        """The built :class:`~thalia.spiking.brain.Brain` (both feedback loops)."""
        changes = self.overrides()
        return build("intact", seed=seed, dt_ms=dt_ms, thalamus=changes["thalamus"], cortex=changes["cortex"])


def _changed(config) -> dict:
    default = type(config)()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(default, f.name)}  # fmt: skip


@dataclass(frozen=True)
class CircuitLFP:
    """LFP proxies of one circuit run (after the warm-up).

    Attributes
    ----------
    signals : dict
        Channel (``"L2/3"``, ``"L5"``) -> LFP proxy (n_times,), pA.
    fs_hz : float
        Sampling rate (1 / dt), Hz.
    rates_hz : dict
        Mean firing rate (Hz) of every population over the same stretch.
    brain : Brain
        The circuit that was run (its network gives the parameter map).
    """

    signals: dict[str, np.ndarray]
    fs_hz: float
    rates_hz: dict[str, float]
    brain: object

    def channel(self, name: str) -> np.ndarray:
        """One channel: ``"cortex"`` (the sum of the layers) or a layer."""
        check_option("channel", name, ("cortex", *self.signals))
        return sum(self.signals.values()) if name == "cortex" else self.signals[name]

    def n_segments(self, segment_s: float = 1.0) -> int:
        """Segments of a Welch estimate with ``segment_s`` s segments and 50 % overlap."""
        nperseg = int(round(check_positive_float("segment_s", segment_s) * self.fs_hz))
        n_times = len(next(iter(self.signals.values())))
        if nperseg > n_times:
            raise ValueError(
                f"Invalid value for 'segment_s': expected at most the recording's {n_times / self.fs_hz:g} s, "
                f"got {segment_s!r}."
            )
        return (n_times - nperseg) // (nperseg - nperseg // 2) + 1

    def csd(self, channels: str = "region", *, segment_s: float = 1.0, fmax: float = 150.0) -> CSD:
        """Welch CSD (Hann, 50 % overlap, segments of ``segment_s`` s: resolution 1/segment_s Hz) of
        the ``"region"`` channel (``"cortex"``) or the ``"layers"`` (``"L2/3"``, ``"L5"``), up to
        ``fmax`` Hz, in pA²/Hz."""
        check_option("channels", channels, CHANNEL_SETS)
        names = ("cortex",) if channels == "region" else tuple(self.signals)
        self.n_segments(segment_s)  # checks segment_s
        data = np.stack([self.channel(name) for name in names])
        nperseg = int(round(segment_s * self.fs_hz))
        return welch_csd(data, self.fs_hz, nperseg=nperseg, fmax=fmax, channels=names, units="pA^2/Hz")


def simulate_lfp(
    circuit: Circuit | None = None,
    *,
    duration_ms: float = 60000.0,
    warmup_ms: float = 500.0,
    seed: int = 0,
    dt_ms: float = 0.1,
) -> CircuitLFP:
    """Run the circuit for ``warmup_ms + duration_ms`` and keep the LFP proxies after the warm-up.

    The default 60 s give a Welch spectrum (1 s segments, 119 of them) whose log has an SD of 0.09.
    A run of the default circuit takes roughly 0.5–1 s of wall time per simulated second on one CPU
    core (the compiled loop).
    """
    circuit = Circuit() if circuit is None else circuit
    if not isinstance(circuit, Circuit):
        raise ValueError(f"Invalid value for 'circuit': expected a thalia.bridge.Circuit, got {circuit!r}.")
    duration_ms = check_positive_float("duration_ms", duration_ms)
    warmup_ms = check_positive_float("warmup_ms", warmup_ms, allow_zero=True)
    brain = circuit.build(seed=seed, dt_ms=dt_ms)
    result = brain.run(warmup_ms + duration_ms)
    keep = int(round(warmup_ms / result.dt_ms))
    cortex = next(region for region in brain.components.values() if region.kind == "cortex")
    signals = {
        name: result.lfp([cortex.population(role) for role in roles])[keep:] for name, roles in LAYER_CHANNELS.items()
    }
    rates = {name: _rate_after(result, name, warmup_ms) for name in result.populations}
    return CircuitLFP(signals, 1000.0 / result.dt_ms, rates, brain)


def _rate_after(result, population: str, warmup_ms: float) -> float:
    times, _ = result.spikes(population)
    sl = result.populations[population]
    return float(np.sum(times >= warmup_ms) / (sl.stop - sl.start) / ((result.duration_ms - warmup_ms) / 1000.0))

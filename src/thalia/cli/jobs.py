"""The jobs behind the ``thalia`` command: data in, fit / simulation / group fit, report and results out.

Each job checks every input before it writes anything, then writes its files atomically into the
output folder (``report.html``, ``result.npz``, ``posterior.npz``, ...) with ``result.json`` last, so a
folder with a ``result.json`` holds a finished run.
"""

from __future__ import annotations

import inspect
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

import thalia
from thalia._logging import logger
from thalia.datasets import OCCIPITAL_CHANNELS, resting_eeg_license, resting_eeg_path
from thalia.inference import fit_spectrum
from thalia.inference.spectral import MODELS
from thalia.io import SPECTRUM_SUFFIXES, RunResult, export_spikes_nwb, load_spectrum, meeg_csd
from thalia.report import HtmlReport
from thalia.report.fit import add_fit_section, auto_spectra, fit_metrics, posterior_table
from thalia.report.spiking import SEGMENT_S, add_spiking_section, spiking_metrics
from thalia.spectra import CSD
from thalia.spiking.builder import BrainBuilder, GlobalConfig

#: meeg_csd's defaults of the options the command line can set (for the description of the data).
_ESTIMATE_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(meeg_csd).parameters.items()
    if name in ("method", "resolution_hz", "notch_hz")
}
#: Weightings of the fit: two stages (peaks first, then the whole log spectrum) or one.
WEIGHTINGS = {"staged": ("spm", "relative"), "spm": ("spm",), "relative": ("relative",)}
Say = Callable[[str], None]


class JobFailed(RuntimeError):
    """The job ran but did not succeed (e.g. the fit failed); its results were written. Exit code 1."""


# ----------------------------------------------------------------------------------------- data in


def read_data(path: str | Path, *, channels=None, fmin=None, fmax=None, **estimate) -> tuple[CSD, dict]:
    """The one-channel spectrum of a data file (channels averaged), normalised to unit mean power.

    ``fmin``/``fmax`` default to 1-45 Hz for a recording and to the whole range of a spectrum file.

    Returns (CSD in units of its mean power over [fmin, fmax], a JSON-able description of the data with
    that mean power, ``power_scale``, in the data's units).
    """
    path = Path(path)
    is_file_spectrum = path.suffix.lower() in SPECTRUM_SUFFIXES
    options = {k: v for k, v in estimate.items() if v is not None}
    if is_file_spectrum and options:
        names = ", ".join(f"--{k.replace('_hz', '').replace('_', '-')}" for k in options)
        raise ValueError(f"Invalid option(s) {names} for the spectrum file {str(path)!r}: they apply to recordings.")
    csd = load_spectrum(path, channels=channels, average=True, fmin=fmin, fmax=fmax, **options)
    scale = float(csd.psd.mean())
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"Invalid data in {str(path)!r}: the spectrum has no positive power.")
    normalised = CSD(csd.freqs, csd.data / scale, csd.channels, "a.u.")
    description = {
        "path": str(path),
        "channel": csd.channels[0],
        "fmin_hz": float(csd.freqs[0]),
        "fmax_hz": float(csd.freqs[-1]),
        "n_freqs": int(len(csd.freqs)),
        "units": csd.units,
        "power_scale": scale,
        **({} if is_file_spectrum else {**_ESTIMATE_DEFAULTS, **options}),
    }
    return normalised, description


# --------------------------------------------------------------------------------------------- fit


class _IterationBar(logging.Handler):
    """A tqdm bar advanced by the variational Laplace iteration records of the thalia logger."""

    def __init__(self, total: int, desc: str):
        super().__init__(level=logging.DEBUG)
        self.bar = tqdm(total=total, desc=desc, unit="it", leave=False)

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("VL "):
            self.bar.update(1)


@contextmanager
def iteration_progress(enabled: bool, total: int, desc: str) -> Iterator[None]:
    """Show a progress bar over the fitting iterations while the block runs (when ``enabled``)."""
    if not enabled:
        yield
        return
    bar, level = _IterationBar(total, desc), logger.level
    others = {handler: handler.level for handler in logger.handlers}
    for handler in others:  # the other handlers keep the logger's threshold
        handler.setLevel(max(handler.level, logger.getEffectiveLevel()))
    logger.addHandler(bar)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(bar)
        logger.setLevel(level)
        for handler, previous in others.items():
            handler.setLevel(previous)
        bar.bar.close()


def fit(csd: CSD, model: str, *, weighting: str = "staged", max_iter: int = 32, say: Say, progress: bool = False):
    """Fit ``model`` to a normalised one-channel spectrum (stages as :data:`WEIGHTINGS`)."""
    stages = WEIGHTINGS[weighting]
    say(f"fitting {model} to {csd.channels[0]} ({len(csd.freqs)} frequencies; weighting {' then '.join(stages)}) ...")
    start = time.perf_counter()
    with iteration_progress(progress, max_iter * len(stages), f"fit {model}"):
        posterior = fit_spectrum(csd, model, weighting=stages, max_iter=max_iter)
    say(f"fit: {posterior.status.value}, F = {posterior.F:.2f} ({time.perf_counter() - start:.1f} s)")
    return posterior


def fit_summary(posterior, data: dict, seconds: float) -> tuple[dict, dict]:
    """(summary for result.json, arrays for result.npz) of a spectral fit."""
    metrics = fit_metrics(posterior)
    freqs, observed, predicted = auto_spectra(posterior)
    summary = {**metrics, "data": data, "fit_seconds": seconds, "posterior": posterior_table(posterior)}
    arrays = {
        "freqs_hz": freqs,
        "power_data": observed[:, 0],
        "power_model": predicted[:, 0],
        "F_trace": np.array([entry.get("F", np.nan) for entry in posterior.trace], dtype=float),
    }
    return summary, arrays


def _write(out: Path, kind: str, report: HtmlReport, summary: dict, arrays: dict, say: Say) -> None:
    report.write(out / "report.html")
    RunResult(kind, summary, arrays).save(out)
    say(f"wrote {out / 'report.html'} and {out / 'result.json'}")


def run_fit(args, say: Say) -> int:
    """``thalia fit``."""
    csd, data = read_data(
        args.data, channels=args.channels, fmin=args.fmin, fmax=args.fmax,
        method=args.method, resolution_hz=args.resolution, notch_hz=args.notch,
    )  # fmt: skip
    start = time.perf_counter()
    posterior = fit(csd, args.model, weighting=args.weighting, max_iter=args.max_iter, say=say, progress=args.progress)
    summary, arrays = fit_summary(posterior, data, time.perf_counter() - start)
    report = HtmlReport(f"thalia fit: {args.model} to {Path(args.data).name}")
    report.add_text(f"Data: {data['path']}, channel {data['channel']}, {data['fmin_hz']:g}-{data['fmax_hz']:g} Hz.")
    add_fit_section(report, posterior, summary)
    posterior.save(args.out / "posterior.npz")
    _write(args.out, "fit", report, summary, arrays, say)
    if posterior.status.value == "failed":
        raise JobFailed(f"the fit failed: {posterior.message}")
    return 0


# ---------------------------------------------------------------------------------------- simulate


def check_simulation(preset: str, duration_s: float, warmup_s: float, dt_ms: float) -> None:
    """The options of :func:`simulate`, checked before anything runs."""
    presets = BrainBuilder.list_presets()
    if preset not in presets:
        raise ValueError(f"Invalid value for 'PRESET': allowed {', '.join(presets)}, got {preset!r}.")
    for name, value in (("duration", duration_s), ("warmup", warmup_s), ("dt", dt_ms)):
        if not np.isfinite(value) or value < 0 or (value == 0 and name != "warmup"):
            raise ValueError(f"Invalid value for '--{name}': expected a number > 0, got {value!r}.")
    if duration_s * 1000.0 < 2000 * SEGMENT_S:
        raise ValueError(
            f"Invalid value for '--duration': {duration_s:g} s is too short for the spectra (two Welch segments of "
            f"{SEGMENT_S:g} s); use --duration {2 * SEGMENT_S:g} or more."
        )


def simulate(preset: str, *, duration_s: float, warmup_s: float, dt_ms: float, seed: int, progress: bool):
    """Build a preset circuit, run a warm-up, then ``duration_s`` recorded; the SimulationResult."""
    check_simulation(preset, duration_s, warmup_s, dt_ms)
    brain = BrainBuilder.preset(preset, GlobalConfig(dt_ms=dt_ms, seed=seed)).build()
    warmup = round(warmup_s * 1000.0 / dt_ms)
    if warmup:
        brain.run(warmup * dt_ms)
    return brain.run(round(duration_s * 1000.0 / dt_ms) * dt_ms, progress=progress)


def simulation_arrays(result) -> dict[str, np.ndarray]:
    """Spike trains (step, neuron), population slices and the LFP proxy of a run, as arrays."""
    names = list(result.populations)
    arrays = {
        "spike_steps": np.asarray(result.spike_steps),
        "spike_ids": np.asarray(result.spike_ids),
        "population_start": np.array([result.populations[n].start for n in names]),
        "population_stop": np.array([result.populations[n].stop for n in names]),
    }
    if result.currents:
        arrays["lfp"] = result.lfp()
    return arrays


def run_simulate(args, say: Say) -> int:
    """``thalia simulate``."""
    check_simulation(args.preset, args.duration, args.warmup, args.dt)
    say(f"simulating {args.preset} for {args.duration:g} s after a {args.warmup:g} s warm-up ...")
    result = simulate(
        args.preset, duration_s=args.duration, warmup_s=args.warmup, dt_ms=args.dt, seed=args.seed,
        progress=args.progress,
    )  # fmt: skip
    metrics = spiking_metrics(result)
    report = HtmlReport(f"thalia simulate: {args.preset}")
    add_spiking_section(report, result, metrics, title=f"Spiking circuit: {args.preset}")
    summary = {"preset": args.preset, "seed": args.seed, "warmup_ms": args.warmup * 1000.0, **metrics}
    summary["populations"] = list(result.populations)
    if args.nwb:
        export_spikes_nwb(args.out / "spikes.nwb", result, session_description=f"thalia simulate {args.preset}")
    _write(args.out, "simulation", report, summary, simulation_arrays(result), say)
    return 0


# -------------------------------------------------------------------------------------------- demo


def run_demo(args, say: Say) -> int:
    """``thalia demo``: TCM fitted to the bundled EEG's occipital alpha, the default circuit, one report."""
    check_simulation("thalamocortical", args.duration, 0.5, 0.1)
    start = time.perf_counter()
    csd, data = read_data(resting_eeg_path(), channels=list(OCCIPITAL_CHANNELS), fmin=1.0, fmax=45.0)
    data["path"] = "thalia.datasets.resting_eeg (PhysioNet EEGMMIDB S001R02, eyes closed)"
    posterior = fit(csd, "tcm", max_iter=args.max_iter, say=say, progress=args.progress)
    fit_s = time.perf_counter() - start
    say(f"simulating the thalamocortical circuit for {args.duration:g} s ...")
    result = simulate(
        "thalamocortical", duration_s=args.duration, warmup_s=0.5, dt_ms=0.1, seed=args.seed, progress=args.progress
    )
    summary, arrays = fit_summary(posterior, data, fit_s)
    report = HtmlReport("thalia demo: thalamo-cortical model of resting EEG, at two scales")
    report.add_text(
        "The thalamo-cortical neural mass model (TCM) is fitted to the occipital spectrum of real eyes-closed "
        "resting EEG (the average of channels Po7, Po3, Poz, Po4, Po8, O1, Oz, O2; Welch, 4 s windows, "
        "1-45 Hz), first weighting the spectral peaks (SPM's precision) and then the whole log spectrum. "
        "Then the default thalamo-cortical spiking circuit runs and its gamma rhythms are measured."
    )
    add_fit_section(report, posterior, summary)
    simulation = add_spiking_section(report, result, title="Spiking circuit: thalamocortical (default)")
    report.add_heading("Data: licence and attribution")
    report.add_text(resting_eeg_license())
    summary["simulation"] = simulation
    summary["seconds"] = time.perf_counter() - start
    posterior.save(args.out / "posterior.npz")
    _write(args.out, "demo", report, summary, {**arrays, **simulation_arrays(result)}, say)
    say(
        f"demo: alpha peak data {summary['peak_hz_data']:.2f} Hz, model {summary['peak_hz_model']:.2f} Hz, "
        f"R² (log spectrum) {summary['r2_log_spectrum']:.3f}; {summary['seconds']:.0f} s in all"
        if summary["peak_hz_model"] is not None and summary["peak_hz_data"] is not None
        else f"demo: R² (log spectrum) {summary['r2_log_spectrum']:.3f}; no peak found in the model"
    )
    if posterior.status.value == "failed":
        raise JobFailed(f"the fit failed: {posterior.message}")
    return 0


# ------------------------------------------------------------------------------------------- group


def _subject_names(paths: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]


def run_group(args, say: Say) -> int:
    """``thalia group``: every subject fitted (on a Dask cluster with --scheduler), then PEB."""
    from thalia.inference import dask_executor, fit_group

    if len(args.data) < 2:
        raise ValueError(f"Invalid value for 'DATA': a group needs at least 2 data files, got {len(args.data)}.")
    spectra = [
        read_data(path, channels=args.channels, fmin=args.fmin, fmax=args.fmax, method=args.method,
                  resolution_hz=args.resolution, notch_hz=args.notch)
        for path in args.data
    ]  # fmt: skip
    names = _subject_names(args.data)
    options = {"weighting": WEIGHTINGS[args.weighting], "max_iter": args.max_iter}
    say(f"fitting {args.model} to {len(names)} subjects" + (f" on {args.scheduler}" if args.scheduler else "") + " ...")
    local = {} if args.scheduler else {"n_workers": args.workers}
    cluster = dask_executor(args.scheduler, **local) if args.scheduler or args.workers > 1 else nullcontext()
    with cluster as executor:
        group = fit_group([csd for csd, _ in spectra], names=names, model=args.model, executor=executor,
                          checkpoint_dir=args.out / "checkpoints", progress=args.progress, **options)  # fmt: skip
    subjects, arrays = [], {}
    for name, posterior, (_, data) in zip(names, group.posteriors, spectra, strict=True):
        if posterior is None:
            subjects.append({"name": name, "status": "failed", "reason": group.failed.get(name, "")})
            continue
        summary, subject_arrays = fit_summary(posterior, data, posterior.seconds)
        subjects.append({"name": name, **{k: v for k, v in summary.items() if k != "posterior"}})
        arrays.update({f"{name}/{k}": v for k, v in subject_arrays.items()})
    report = HtmlReport(f"thalia group: {args.model}, {len(names)} subjects")
    report.add_table(
        [{k: s.get(k) for k in ("name", "status", "F", "r2_log_spectrum", "peak_hz_data", "peak_hz_model")}
         for s in subjects], caption="First level: one fit per subject.",
    )  # fmt: skip
    summary = {"model": args.model, "subjects": subjects, "failed": group.failed}
    if sum(p is not None for p in group.posteriors) >= 2:
        result = group.peb()
        summary["peb"] = _peb_summary(result)
        report.add_heading("Second level: parametric empirical Bayes (group mean)")
        report.add_text(f"F = {result.F:.2f}; converged: {result.converged} after {result.iterations} iterations.")
        report.add_table(summary["peb"]["effects"], caption="Group effects (90% CI).")
    _write(args.out, "group", report, summary, arrays, say)
    if group.failed:
        raise JobFailed(f"{len(group.failed)} of {len(names)} subjects failed: {group.failed}")
    return 0


def _peb_summary(result) -> dict[str, Any]:
    mean = result.Ep.reshape(-1).detach().cpu().numpy()
    sd = np.sqrt(np.clip(np.diagonal(result.Cp.detach().cpu().numpy()), 0, None))
    z = float(stats.norm.ppf(0.95))
    effects = [
        {"effect": name, "mean": float(m), "90% CI low": float(m - z * s), "90% CI high": float(m + z * s)}
        for name, m, s in zip(result.effect_names, mean, sd, strict=True)
    ]
    return {"F": float(result.F), "converged": bool(result.converged), "iterations": int(result.iterations),
            "effects": effects}  # fmt: skip


# -------------------------------------------------------------------------------------------- info


def info() -> dict[str, Any]:
    """Versions, threads, devices and bundled data of this installation."""
    import mne

    return {
        "thalia": thalia.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "numpy": np.__version__,
        "mne": mne.__version__,
        "models": ", ".join(MODELS),
        "presets": ", ".join(BrainBuilder.list_presets()),
        "bundled EEG": str(resting_eeg_path()),
    }

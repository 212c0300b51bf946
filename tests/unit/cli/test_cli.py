"""The ``thalia`` command in process: each command's outputs, and every kind of bad input answered by
one line on stderr, exit code 2, no traceback and nothing written."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from thalia.cli import main
from thalia.datasets import resting_eeg_path
from thalia.inference import Posterior
from thalia.io import RunResult
from thalia.mass import TCM
from thalia.report.fit import r2_log

FREQS = np.arange(2.0, 40.5, 0.5)


@pytest.fixture(scope="module")
def tcm_csv(tmp_path_factory):
    """A TCM spectrum (prior mean, a slower cortico-thalamic delay) as CSV, in V²/Hz-like units."""
    model = TCM()
    theta = model.space.prior_mean_vector().clone()
    theta[model.space.slice_of("CT")] = 0.1
    power = model.spectrum_function(torch.tensor(FREQS))(theta)[:, 0, 0].real.numpy() * 1e-11
    path = tmp_path_factory.mktemp("data") / "subject01.csv"
    path.write_text("freq_hz,power\n" + "\n".join(f"{f:g},{p:.17g}" for f, p in zip(FREQS, power, strict=True)))
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_and_version(capsys):
    code, out, _ = _run(capsys, "info")
    assert code == 0 and "thalia: 0.1.0" in out and "tcm, cmc, cmm_nmda" in out and "thalamocortical" in out
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == "thalia 0.1.0"


def test_fit_writes_report_results_and_posterior(tmp_path, tcm_csv, capsys):
    out = tmp_path / "fit"
    code, _, err = _run(capsys, "fit", tcm_csv, "--max-iter", 3, "--fmin", 2, "--fmax", 40, "--out", out)
    assert code == 0, err
    summary = json.loads((out / "result.json").read_text())
    for key in ("F", "r2_log_spectrum", "peak_hz_data", "peak_hz_model", "posterior", "status", "data"):
        assert key in summary
    assert summary["kind"] == "fit" and summary["model"] == "tcm" and summary["data"]["channel"] == "power"
    assert summary["data"]["power_scale"] > 0 and "method" not in summary["data"]
    posterior = Posterior.load(out / "posterior.npz")
    assert summary["F"] == pytest.approx(posterior.F)
    assert len(summary["posterior"]) == int(posterior.free().sum())
    result = RunResult.load(out)  # the numbers of result.json are those of the arrays
    assert summary["r2_log_spectrum"] == pytest.approx(
        r2_log(result.arrays["power_data"], result.arrays["power_model"])
    )
    np.testing.assert_allclose(result.arrays["freqs_hz"], FREQS)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "<table>" in html and 'src="http' not in html
    assert sorted(p.name for p in out.iterdir()) == ["posterior.npz", "report.html", "result.json", "result.npz"]


def test_simulate_rates_match_the_spikes(tmp_path, capsys):
    out = tmp_path / "sim"
    code, _, err = _run(capsys, "simulate", "thalamocortical", "--duration", 0.6, "--warmup", 0.1, "--out", out)
    assert code == 0, err
    result = RunResult.load(out)
    summary, arrays = result.summary, result.arrays
    assert summary["kind"] if "kind" in summary else result.kind == "simulation"
    for k, name in enumerate(summary["populations"]):
        start, stop = arrays["population_start"][k], arrays["population_stop"][k]
        count = int(((arrays["spike_ids"] >= start) & (arrays["spike_ids"] < stop)).sum())
        assert summary["rates_hz"][name] == pytest.approx(count / (stop - start) / 0.6)
    assert set(summary["peaks"]) == {"lfp", "thalamus_rate", "relay_rate", "relay_ho_rate"}
    assert set(summary["peaks"]["lfp"]) == {"low_gamma", "high_gamma"}
    assert arrays["lfp"].shape == (6000,)
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_group_fits_every_subject_then_peb(tmp_path, tcm_csv, capsys):
    second = tmp_path / "subject02.csv"
    rows = [line.split(",") for line in tcm_csv.read_text().splitlines()[1:]]
    second.write_text("freq_hz,power\n" + "\n".join(f"{f},{float(p) * 1.3:.17g}" for f, p in rows))
    out = tmp_path / "group"
    code, _, err = _run(capsys, "group", tcm_csv, second, "--max-iter", 2, "--weighting", "spm", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "result.json").read_text())
    assert [s["name"] for s in summary["subjects"]] == ["subject01", "subject02"] and summary["failed"] == {}
    assert np.isfinite(summary["peb"]["F"]) and len(summary["peb"]["effects"]) > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[0].startswith("subject01-")


def _data(tmp_path, name: str) -> str:
    """A data file by name: the bundled EEG, a missing or unreadable file, or a FIF recording with a NaN
    or flat channel or too short for 0.25 Hz."""
    import mne

    path = tmp_path / name
    if name == "bundled":
        return str(resting_eeg_path())
    if name == "junk.edf":
        path.write_text("not a recording")
    if name in ("missing.edf", "junk.edf"):
        return str(path)
    data = np.random.default_rng(0).standard_normal((2, 3000)) * 1e-5
    if name == "nan.fif":
        data[1, 5] = np.nan
    elif name == "flat.fif":
        data[1] = 0.0
    elif name == "short.fif":
        data = data[:, :200]
    info = mne.create_info(["Cz", "Oz"], 100.0, ch_types="eeg")
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    return str(path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "@missing.edf"], r"no such file '.*missing.edf'"),
        (["fit", "@junk.edf"], r"MNE could not read .*junk.edf"),
        (["fit", "@bundled", "--channels", "O1,Xz"], r"Unknown channel\(s\) 'Xz'"),
        (["fit", "@nan.fif", "--channels", "Cz,Oz"], r"channel\(s\) Oz: NaN or infinite samples"),
        (["fit", "@flat.fif"], r"channel\(s\) Oz: the signal is flat"),
        (["fit", "@short.fif", "--fmax", "40"], r"2 s long, too short for a resolution of 0.25 Hz"),
        (["fit", "@bundled", "--fmax", "90"], r"'fmax': 90 Hz is at or beyond the Nyquist frequency 80 Hz"),
        (["fit", "@bundled", "--model", "tmc"], r"'--model': allowed tcm, cmc, cmm_nmda, got 'tmc'"),
        (["fit", "@bundled", "--method", "burg"], r"'--method': allowed welch, multitaper, got 'burg'"),
        (["fit", "@bundled", "--fmax", "abc"], r"argument --fmax: invalid float value: 'abc'"),
        (["simulate", "thalamus_only"], r"'PRESET': allowed thalamocortical, got 'thalamus_only'"),
        (["simulate", "thalamocortical", "--duration", "0.1"], r"too short for the spectra"),
        (["group", "@bundled"], r"a group needs at least 2 data files"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        ([], r"the following arguments are required: COMMAND"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, argv, message):
    argv = [_data(tmp_path, a[1:]) if a.startswith("@") else a for a in argv]
    out = tmp_path / "out"
    code, _, err = _run(capsys, *argv, *(["--out", out] if argv and argv[0] != "frobnicate" else []))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("thalia") and re.search(message, lines[0]), lines[0]
    assert not out.exists()

"""Group fits and sweeps (thalia.inference.group): order, checkpoint resume, retries, bad input.

The fits are cheap on purpose (CMC, 12 frequencies, two VL iterations); the comparisons with process
pools and a Dask cluster are in tests/consistency/test_group_dask.py.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.unit.inference._group_tasks import square_or_die
from thalia.inference import GroupFit, SweepError, dask_executor, fit_group, fit_spectrum, sweep
from thalia.inference import group as group_module
from thalia.inference.peb import peb
from thalia.mass import CMC

FREQS = torch.arange(4.0, 49.0, 4, dtype=torch.float64)
CHEAP = {"model": "cmc", "max_iter": 2, "progress": False}


def cmc_spectra(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """CMC spectra at θ = prior mean + 0.3·prior SD·z (seeded)."""
    model = CMC()
    forward = model.spectrum_function(FREQS)
    gen = torch.Generator().manual_seed(seed)
    sd = model.space.prior_var_vector().sqrt()
    mean = model.space.prior_mean_vector()
    return [(FREQS, forward(mean + 0.3 * sd * torch.randn(sd.shape, generator=gen, dtype=sd.dtype))) for _ in range(n)]


@pytest.fixture(scope="module")
def spectra():
    return cmc_spectra(4)


@pytest.fixture(scope="module")
def reference(spectra):
    """The uninterrupted serial group fit."""
    return fit_group(spectra, **CHEAP)


@pytest.fixture
def counted(monkeypatch):
    """Counts the fits that run (and can interrupt the run after ``stop_after`` of them)."""
    calls, options = [], {"stop_after": None}

    def fit(spectrum, model, **kwargs):
        if options["stop_after"] is not None and len(calls) == options["stop_after"]:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C or the machine went down
        calls.append(spectrum)
        return fit_spectrum(spectrum, model, **kwargs)

    monkeypatch.setattr(group_module, "fit_spectrum", fit)
    return calls, options


def same_posteriors(a, b, rtol=0.0):
    assert a.F == pytest.approx(b.F, rel=rtol, abs=0)
    torch.testing.assert_close(a.mean, b.mean, rtol=rtol, atol=0)
    torch.testing.assert_close(a.cov, b.cov, rtol=rtol, atol=0)


# --------------------------------------------------------------------------------------------------
# results


def test_group_fit_equals_one_fit_per_subject(spectra, reference):
    assert reference.names == ("subject000", "subject001", "subject002", "subject003")
    assert reference.failed == {} and reference.retried == {} and reference.from_checkpoint == ()
    for spectrum, posterior in zip(spectra, reference.posteriors, strict=True):
        same_posteriors(posterior, fit_spectrum(spectrum, "cmc", max_iter=2))
    assert reference["subject002"] is reference.posteriors[2]


def test_mapping_of_spectra_names_the_subjects(spectra, reference):
    result = fit_group(dict(zip("abcd", spectra, strict=True)), **CHEAP)
    assert result.names == ("a", "b", "c", "d")
    same_posteriors(result["c"], reference.posteriors[2])


def test_peb_convenience_equals_peb_and_drops_failed_subjects(spectra, reference):
    expected = peb(reference.posteriors[:3], torch.ones(3, 1))
    with_failure = GroupFit(
        names=reference.names, posteriors=[*reference.posteriors[:3], None], failed={"subject003": "ValueError: x"}
    )
    assert with_failure.peb().F == pytest.approx(expected.F, rel=1e-12)
    design = torch.tensor([[1.0, -0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 9.0]], dtype=torch.float64)
    assert with_failure.peb(design).F == pytest.approx(peb(reference.posteriors[:3], design[:3]).F, rel=1e-12)
    with pytest.raises(ValueError, match="'X'.*one row per subject"):
        with_failure.peb(torch.ones(3, 1))


def slow_square(x, n):
    """x², finishing later for smaller x (so completion order is the reverse of the grid's)."""
    time.sleep(0.05 * (n - x))
    return x * x


def test_results_in_grid_order_whatever_the_completion_order():
    finished = []

    def square(x, n):
        result = slow_square(x, n)
        finished.append(x)
        return result

    with cf.ThreadPoolExecutor(4) as pool:
        results = sweep(square, [{"x": x, "n": 4} for x in range(4)], executor=pool, progress=False)
    assert results == [0, 1, 4, 9]
    assert finished[0] == 3  # the last point finished first


def test_dict_of_lists_is_the_cartesian_product():
    results = sweep(lambda a, b: (a, b), {"a": [1, 2], "b": ["x", "y", "z"]}, progress=False)
    assert results == [(1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z")]


# --------------------------------------------------------------------------------------------------
# checkpoints


def test_interrupted_group_fit_resumes_where_it_stopped(spectra, reference, counted, tmp_path):
    calls, options = counted
    options["stop_after"] = 2
    with pytest.raises(KeyboardInterrupt):
        fit_group(spectra, checkpoint_dir=tmp_path, **CHEAP)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2
    options["stop_after"] = None
    resumed = fit_group(spectra, checkpoint_dir=tmp_path, **CHEAP)
    assert len(calls) == 4  # only the two unfinished subjects were fitted
    assert resumed.from_checkpoint == ("subject000", "subject001")
    for a, b in zip(resumed.posteriors, reference.posteriors, strict=True):
        same_posteriors(a, b)
    again = fit_group(spectra, checkpoint_dir=tmp_path, verbose=False, **CHEAP)  # verbose: not in the key
    assert len(calls) == 4 and again.from_checkpoint == reference.names


def test_changed_input_invalidates_its_checkpoint(spectra, counted, tmp_path):
    calls, _ = counted
    first = fit_group(spectra[:3], checkpoint_dir=tmp_path, **CHEAP)
    changed = [spectra[0], (FREQS, 1.01 * spectra[1][1]), spectra[2]]
    result = fit_group(changed, checkpoint_dir=tmp_path, **CHEAP)
    assert len(calls) == 4 and result.from_checkpoint == ("subject000", "subject002")
    assert result.posteriors[1].F != pytest.approx(first.posteriors[1].F)  # the new data's fit
    options = fit_group(changed, checkpoint_dir=tmp_path, **{**CHEAP, "max_iter": 1})  # a changed fit option
    assert len(calls) == 7 and options.from_checkpoint == ()


def test_warm_start_keys_its_checkpoint_by_its_mean(spectra, reference, counted, tmp_path):
    calls, _ = counted
    start = reference.posteriors[1]
    fit_group(spectra[:1], checkpoint_dir=tmp_path, init=start, **CHEAP)
    again = fit_group(spectra[:1], checkpoint_dir=tmp_path, init=start.with_(seconds=99.0, trace=[]), **CHEAP)
    assert len(calls) == 1 and again.from_checkpoint == ("subject000",)
    moved = start.with_(mean=start.mean + 0.01)
    assert fit_group(spectra[:1], checkpoint_dir=tmp_path, init=moved, **CHEAP).from_checkpoint == ()


def test_checkpoint_names_are_file_safe_and_keep_subjects_apart(spectra, tmp_path):
    result = fit_group(spectra[:2], names=["a/b", "a:b"], checkpoint_dir=tmp_path, **CHEAP)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("a_b-") and f.endswith(".npz") for f in files)
    again = fit_group(spectra[:2], names=["a/b", "a:b"], checkpoint_dir=tmp_path, **CHEAP)
    assert again.from_checkpoint == ("a/b", "a:b")
    same_posteriors(again["a:b"], result["a:b"])


def test_checkpoint_key_is_the_same_in_another_process(spectra):
    """Tensors must be hashed by value: a rerun in a new process has to find its checkpoints."""
    here = group_module._fingerprint("s", group_module.as_csd(spectra[0]), "cmc", {"priors": CMC().space})
    code = (
        "import sys, torch; sys.path.insert(0, '.');"
        "from tests.unit.inference.test_group import cmc_spectra; from thalia.inference import group as g;"
        "from thalia.mass import CMC;"
        "print(g._fingerprint('s', g.as_csd(cmc_spectra(1)[0]), 'cmc', {'priors': CMC().space}))"
    )
    root = Path(__file__).resolve().parents[3]
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert there.stdout.strip() == here


def counting_square(x, log):
    with open(log, "a") as handle:
        handle.write(f"{x}\n")
    if x == 3 and os.environ.get("THALIA_TEST_INTERRUPT") == "1":
        raise KeyboardInterrupt
    return x * x


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    log, store = tmp_path / "calls.txt", tmp_path / "store"
    grid = [{"x": x, "log": str(log)} for x in range(6)]
    monkeypatch.setenv("THALIA_TEST_INTERRUPT", "1")
    with pytest.raises(KeyboardInterrupt):
        sweep(counting_square, grid, checkpoint_dir=store, progress=False)
    assert log.read_text().split() == ["0", "1", "2", "3"] and len(list(store.glob("*.pkl"))) == 3
    monkeypatch.setenv("THALIA_TEST_INTERRUPT", "0")
    assert sweep(counting_square, grid, checkpoint_dir=store, progress=False) == [x * x for x in range(6)]
    assert log.read_text().split() == ["0", "1", "2", "3", "3", "4", "5"]
    assert sorted(pickle.loads(p.read_bytes()) for p in store.glob("*.pkl")) == [x * x for x in range(6)]
    assert list(store.glob("*.partial")) == []
    grid[0]["x"] = 10  # a changed point runs again
    assert sweep(counting_square, grid, checkpoint_dir=store, progress=False)[0] == 100
    assert log.read_text().split()[-1] == "10"


# --------------------------------------------------------------------------------------------------
# retries


def spawn_pool():
    return cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def test_task_whose_worker_died_is_retried_on_a_fresh_pool(tmp_path):
    marker = tmp_path / "died"
    with spawn_pool() as pool:
        results = sweep(square_or_die, [{"x": x, "marker": str(marker)} for x in range(3)], executor=pool)
    assert marker.exists()  # the first attempt did die
    assert results == [0, 1, 4]


def test_worker_deaths_beyond_retries_are_reported(tmp_path):
    with spawn_pool() as pool, pytest.raises(SweepError, match=r"grid\[0\]: worker died 1 time.*BrokenProcessPool"):
        sweep(square_or_die, [{"x": 0, "marker": str(tmp_path / "died")}], executor=pool, retries=0)


def test_oserror_is_retried_and_value_error_is_not(spectra, monkeypatch):
    calls = []

    def flaky(spectrum, model, **kwargs):
        calls.append(spectrum)
        if len(calls) == 1:
            raise ConnectionResetError("connection to worker lost")
        return fit_spectrum(spectrum, model, **kwargs)

    monkeypatch.setattr(group_module, "fit_spectrum", flaky)
    two_channels = (FREQS, torch.ones(len(FREQS), 2))  # the one-source CMC predicts one channel
    result = fit_group([spectra[0], two_channels, spectra[1]], **CHEAP)
    assert len(calls) == 4  # subject 0 twice, the two-channel subject once (not retried), subject 2 once
    assert result.retried == {"subject000": 1}
    assert list(result.failed) == ["subject001"] and "ValueError" in result.failed["subject001"]
    assert "2 channel(s)" in result.failed["subject001"] and result.posteriors[1] is None
    assert result.posteriors[0] is not None and result.posteriors[2] is not None


def test_bad_data_fails_its_subject_only(spectra):
    result = fit_group([spectra[0], (FREQS, torch.ones(3, 3, 3, 3))], **CHEAP)
    assert list(result.failed) == ["subject001"] and "spectra[1]" in result.failed["subject001"]
    assert result.posteriors[0] is not None


def test_sweep_reports_failed_points_after_the_others():
    with pytest.raises(SweepError) as info:
        sweep(lambda x: 1 / x if x else int("zero"), {"x": [1, 0, 4]}, progress=False)
    assert info.value.failed == {1: "ValueError: invalid literal for int() with base 10: 'zero'"}
    assert info.value.results == [1.0, None, 0.25]


# --------------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spectra": []}, "'spectra': expected at least one spectrum"),
        ({"spectra": "a.csv"}, "'spectra': expected a sequence"),
        ({"names": ["a"]}, "'names': expected 2 non-empty strings"),
        ({"names": ["a", ""]}, "'names': expected 2 non-empty strings"),
        ({"names": ["a", "a"]}, "'names': expected unique names, got duplicates \\['a'\\]"),
        ({"model": "tmc"}, "'model': allowed 'tcm', 'cmc', 'cmm_nmda'"),
        ({"retries": -1}, "'retries': expected an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_name_the_parameter(spectra, kwargs, match):
    arguments = {"spectra": spectra[:2], **CHEAP, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_group(arguments.pop("spectra"), **arguments)


def test_checkpoint_dir_that_is_a_file(spectra, tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("")
    with pytest.raises(ValueError, match="'checkpoint_dir': expected a directory, got the file"):
        fit_group(spectra[:1], checkpoint_dir=path, **CHEAP)
    with pytest.raises(ValueError, match="'checkpoint_dir'"):
        sweep(abs, [{"x": 1}], checkpoint_dir=path)


@pytest.mark.parametrize(
    ("fn", "grid", "match"),
    [
        (abs, [], "'grid': expected at least one point"),
        (abs, {"x": []}, "'grid': expected at least one point"),
        (abs, {"x": 3}, "'grid\\['x'\\]': expected a list of values"),
        (abs, [1, 2], "'grid\\[0\\]': expected a dict"),
        (abs, 5, "'grid': expected a list of dicts or a dict of lists"),
        (3, [{"x": 1}], "'fn': expected a callable"),
    ],
)
def test_bad_sweep_arguments(fn, grid, match):
    with pytest.raises(ValueError, match=match):
        sweep(fn, grid)


def test_dask_executor_bad_arguments():
    with pytest.raises(ValueError, match="'address' connects to a running one"):
        with dask_executor("tcp://127.0.0.1:1", local_directory="x"):
            pass
    with pytest.raises(ValueError, match="'n_workers': expected an integer >= 1, got 0"):
        with dask_executor(n_workers=0):
            pass

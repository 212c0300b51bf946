"""Group fits on other processes give the serial posteriors, and survive a worker killed mid-run.

Paths compared: in this process (serial), a ``ProcessPoolExecutor`` (spawned processes) and a 2-worker
dask ``LocalCluster`` (:func:`thalia.inference.dask_executor`). A worker is killed with SIGKILL while it
holds tasks, after the first posteriors have been checkpointed.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
import time

import pytest
import torch

from tests.unit.inference.test_group import CHEAP, cmc_spectra, same_posteriors
from thalia.inference import dask_executor, fit_group, sweep

#: Fits of the 20-subject run: a converged CMC fit (8 iterations) takes ~0.2–0.6 s here.
FIT = {"model": "cmc", "max_iter": 8, "progress": False}
#: Relative tolerance between processes (same torch build, one thread each: in practice identical).
RTOL = 1e-10


def kill_busy_worker_after_first_result(client, checkpoint_dir):
    """Start a thread that SIGKILLs a worker holding tasks once the first posterior is checkpointed.
    Returns a dict filled in by the thread: the killed pid and how many subjects had finished."""
    pids, record = client.run(os.getpid), {}

    def kill():
        deadline = time.monotonic() + 300
        while not list(checkpoint_dir.glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = [address for address, keys in client.processing().items() if keys and address in pids]
        if busy:
            record["finished"] = len(list(checkpoint_dir.glob("*.npz")))
            record["pid"] = pids[busy[0]]
            os.kill(record["pid"], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    record["thread"] = thread
    return record


def check_kill(client, record, n_total):
    record["thread"].join(timeout=60)
    assert "pid" in record, "no worker was busy after the first result: nothing was killed"
    assert record["finished"] < n_total  # killed mid-run
    assert record["pid"] not in client.run(os.getpid).values()  # that process is gone


@pytest.fixture(scope="module")
def spectra():
    return cmc_spectra(6, seed=2)


@pytest.fixture(scope="module")
def serial(spectra):
    return fit_group(spectra, **CHEAP)


def test_same_posteriors_serially_and_on_a_process_pool(spectra, serial, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read by torch in the spawned processes: one thread each
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = fit_group(spectra, executor=pool, **CHEAP)
    assert pooled.failed == {} and pooled.names == serial.names
    for a, b in zip(pooled.posteriors, serial.posteriors, strict=True):
        same_posteriors(a, b, rtol=RTOL)


def test_same_posteriors_on_dask_with_a_killed_worker_retried(spectra, serial, tmp_path):
    """With dask's own rescheduling off (allowed_failures=0) the killed worker's tasks come back as
    KilledWorker, and fit_group resubmits them; every posterior equals the serial one."""
    store = tmp_path / "checkpoints"
    options = {"local_directory": tmp_path, "scheduler_kwargs": {"allowed_failures": 0}}
    caller = (torch.get_num_threads(), {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")})
    with dask_executor(n_workers=2, **options) as executor:
        assert set(executor.client.run(torch.get_num_threads).values()) == {1}  # the nanny's OMP_NUM_THREADS=1
        assert set(executor.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
        record = kill_busy_worker_after_first_result(executor.client, store)
        result = fit_group(spectra, executor=executor, checkpoint_dir=store, **CHEAP)
        check_kill(executor.client, record, len(spectra))
        # parameters named like dask's submit options (key=, workers=) reach fn
        assert sweep(lambda key, workers: key * workers, {"key": [2, 3], "workers": [5]}, executor=executor) == [10, 15]
    assert result.failed == {} and sum(result.retried.values()) >= 1
    for a, b in zip(result.posteriors, serial.posteriors, strict=True):
        same_posteriors(a, b, rtol=RTOL)
    assert (torch.get_num_threads(), {k: os.environ.get(k) for k in caller[1]}) == caller  # the caller is untouched


@pytest.mark.slow
def test_group_fit_of_20_subjects_survives_a_killed_worker(tmp_path):
    """The issue's target: 20 subjects on a 2-worker LocalCluster, one worker killed mid-run."""
    spectra = cmc_spectra(20, seed=3)
    store = tmp_path / "checkpoints"
    start = time.perf_counter()
    with dask_executor(n_workers=2, local_directory=tmp_path) as executor:
        record = kill_busy_worker_after_first_result(executor.client, store)
        result = fit_group(spectra, executor=executor, checkpoint_dir=store, **FIT)
        check_kill(executor.client, record, len(spectra))
    wall = time.perf_counter() - start
    assert result.failed == {} and len(list(store.glob("*.npz"))) == 20
    serial = fit_group(spectra, **FIT)  # after the cluster run, so that its wall time is not shared
    for a, b in zip(result.posteriors, serial.posteriors, strict=True):
        same_posteriors(a, b, rtol=RTOL)
    print(f"20 subjects on 2 workers, one killed after {record['finished']} finished: {wall:.1f} s")

"""Scale-out: group fits and parameter sweeps on any ``concurrent.futures.Executor`` or a Dask cluster.

* :func:`fit_group` — one :func:`~thalia.inference.fit_spectrum` per subject, each a task on the
  executor (``None``: in this process, one after another), collected into a :class:`GroupFit`.
* :func:`sweep` — ``fn(**params)`` for every point of a grid, results in grid order.
* :func:`dask_executor` — a context manager yielding an Executor backed by a ``dask.distributed``
  client (a new ``LocalCluster`` of worker processes, or an existing scheduler's address).

Both runners share one loop. Finished tasks are checkpointed atomically (one file per subject or grid
point, keyed by a hash of its inputs), so a rerun loads them and submits only the rest. A task whose
worker died (dask ``KilledWorker``, ``BrokenProcessPool``, ``CancelledError``, ``OSError``) is
resubmitted up to ``retries`` times; a broken ``ProcessPoolExecutor`` cannot take work any more, so it
is replaced by a fresh pool of the same size, context and initializer, shut down on return. Any other
exception is the task's own (bad data, a bug in ``fn``): it is not retried and is reported.

Threads: nothing here changes torch's thread count. Dask's nanny starts worker processes with
``OMP_NUM_THREADS=1`` (its ``distributed.nanny.pre-spawn-environ`` default), so torch uses one
thread per worker; a ``ProcessPoolExecutor``'s processes use torch's default unless
``OMP_NUM_THREADS`` is set in the environment before the pool starts them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import logging
import os
import pickle
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dask.base import tokenize
from dask.tokenize import TokenizationError
from tqdm.auto import tqdm

from thalia._logging import logger
from thalia._validation import check_positive_int
from thalia.inference import peb as _peb
from thalia.inference.posterior import Posterior
from thalia.inference.spectral import _model, as_csd, fit_spectrum

#: fit options that do not change a fit's result (left out of the checkpoint key).
_NOT_IN_KEY = ("verbose",)
#: Environment dask's nanny gives a worker process before it starts (OMP_NUM_THREADS=1 and the like).
_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


# --------------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True, eq=False)
class GroupFit:
    """The subjects' posteriors of a :func:`fit_group` run.

    Attributes
    ----------
    names : tuple of str
        Subject names, in input order.
    posteriors : list of Posterior or None
        One per subject, in input order; ``None`` where the subject failed.
    failed : dict of str to str
        Subject name -> one-line reason (exception type and message) for every subject without a posterior.
    from_checkpoint : tuple of str
        Subjects whose posteriors were loaded from ``checkpoint_dir`` instead of fitted in this run.
    retried : dict of str to int
        Subject name -> how many times its task was resubmitted after its worker died.
    """

    names: tuple[str, ...]
    posteriors: list[Posterior | None]
    failed: dict[str, str]
    from_checkpoint: tuple[str, ...] = ()
    retried: dict[str, int] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> Posterior | None:
        return self.posteriors[self.names.index(name)]

    def peb(self, X: Any = None, **options: Any) -> _peb.PEBResult:
        """Parametric empirical Bayes over the fitted subjects (:func:`thalia.inference.peb.peb`).

        Parameters
        ----------
        X : array_like, shape (n_subjects, n_covariates), optional
            Design matrix with one row per subject of ``names`` (rows of failed subjects are dropped);
            default a column of ones (the group mean).
        **options
            Passed to :func:`~thalia.inference.peb.peb` (``parameters``, ``covariate_names``, ...).
        """
        keep = [i for i, p in enumerate(self.posteriors) if p is not None]
        if not keep:
            raise ValueError("GroupFit.peb: no subject has a posterior (all failed).")
        if X is None:
            X = np.ones((len(self.names), 1))
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] != len(self.names):
            raise ValueError(
                f"Invalid shape for 'X': expected ({len(self.names)}, n_covariates), one row per subject of "
                f"'names' (failed subjects included), got {X.shape}."
            )
        if len(keep) < len(self.names):
            logger.warning("GroupFit.peb: leaving out %d failed subject(s).", len(self.names) - len(keep))
        return _peb.peb([self.posteriors[i] for i in keep], X[keep], **options)


class SweepError(RuntimeError):
    """Some points of a :func:`sweep` failed; the others finished (and are checkpointed).

    Attributes
    ----------
    failed : dict of int to str
        Grid index -> one-line reason.
    results : list
        The results in grid order, ``None`` at the failed points.
    """

    def __init__(self, failed: dict[int, str], results: list):
        self.failed = failed
        self.results = results
        listed = "; ".join(f"grid[{i}]: {reason}" for i, reason in sorted(failed.items())[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        super().__init__(f"{len(failed)} of {len(results)} sweep points failed: {listed}{more}")


# --------------------------------------------------------------------------------------------------
# the public runners


def fit_group(
    spectra: Sequence[Any] | Mapping[str, Any],
    *,
    names: Sequence[str] | None = None,
    model: Any = "tcm",
    executor: cf.Executor | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    retries: int = 2,
    progress: bool = True,
    **fit_kwargs: Any,
) -> GroupFit:
    """Fit every subject's spectrum with :func:`~thalia.inference.fit_spectrum`, one task per subject.

    Parameters
    ----------
    spectra : sequence of CSD or (freqs, values), or mapping name -> spectrum
        One spectrum per subject (forms as :func:`~thalia.inference.fit_spectrum`).
    names : sequence of str, optional
        Unique subject names (default: the mapping's keys, else ``"subject000"``, ``"subject001"``, ...).
    model : {"tcm", "cmc", "cmm_nmda"} or model instance
        The neural mass model, as :func:`~thalia.inference.fit_spectrum`.
    executor : concurrent.futures.Executor, optional
        Where the fits run: a ``ProcessPoolExecutor``, :func:`dask_executor`, any Executor. ``None``:
        in this process, one subject after another.
    checkpoint_dir : path, optional
        Each finished posterior is saved there atomically as ``<name>-<hash>.npz``; the hash covers
        the name, the data and the fit options, so a changed input is refitted, never silently reused.
        A rerun loads the finished subjects and fits only the rest.
    retries : int
        How many times a subject's task is resubmitted when its worker died. Errors of the fit itself
        (e.g. a ValueError for bad data) are not retried; they end up in ``failed``.
    progress : bool
        Show a tqdm progress bar.
    **fit_kwargs
        Passed to :func:`~thalia.inference.fit_spectrum` (``priors``, ``mode``, ``max_iter``, ...).

    Returns
    -------
    GroupFit
        Posteriors in input order, whatever order the tasks finished in.
    """
    names, spectra = _subjects(spectra, names)
    _model(model, fit_kwargs.get("priors"))  # an unknown model fails here, not once per subject
    retries = check_positive_int("retries", retries, minimum=0)
    directory = _checkpoint_dir(checkpoint_dir)
    # a warm start (init=posterior) acts through its mean only, not its wall time or trace
    key = {k: v.mean if isinstance(v, Posterior) else v for k, v in fit_kwargs.items() if k not in _NOT_IN_KEY}
    failed: dict[int, str] = {}
    data: dict[int, Any] = {}
    paths: dict[int, Path] = {}
    for i, spectrum in enumerate(spectra):
        try:
            data[i] = as_csd(spectrum, f"spectra[{i}]")
        except ValueError as err:
            failed[i] = _reason(err)
            continue
        if directory is not None:
            paths[i] = directory / f"{_safe(names[i])}-{_fingerprint(names[i], data[i], model, key)}.npz"
    loaded = _load_finished(paths, Posterior.load)

    def save(i: int, posterior: Posterior) -> None:
        if i in paths:
            posterior.save(paths[i])

    jobs = {i: partial(fit_spectrum, csd, model, **fit_kwargs) for i, csd in data.items() if i not in loaded}
    run = _execute(jobs, executor, retries, progress, "fit_group", save, len(loaded))
    results = {**loaded, **run.results}
    return GroupFit(
        names=names,
        posteriors=[results.get(i) for i in range(len(names))],
        failed={names[i]: reason for i, reason in sorted({**failed, **run.failed}.items())},
        from_checkpoint=tuple(names[i] for i in sorted(loaded)),
        retried={names[i]: n for i, n in run.retried.items()},
    )


def sweep(
    fn: Callable[..., Any],
    grid: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    *,
    executor: cf.Executor | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    retries: int = 2,
    progress: bool = True,
) -> list:
    """Run ``fn(**params)`` for every point of ``grid``; the results come back in grid order.

    Parameters
    ----------
    fn : callable
        Called with each point's parameters as keyword arguments. On process-based executors it must
        be picklable (a module-level function) and so must its result.
    grid : list of dict, or dict of lists
        The points, or the values of each parameter: a dict of lists is expanded to the Cartesian
        product (the first key varies slowest, as ``itertools.product``).
    executor, retries, progress
        As :func:`fit_group`.
    checkpoint_dir : path, optional
        Each finished point's result is pickled there atomically as ``point-<hash>.pkl``, the hash
        covering ``fn``'s qualified name and the point's parameters; a rerun loads them and runs only
        the rest. Use one directory per sweep function (two lambdas share a name).

    Returns
    -------
    list
        ``fn``'s results, in grid order.

    Raises
    ------
    SweepError
        If some points failed (their exception, or their worker died more than ``retries`` times),
        after all the others finished; it carries the reasons and the other results.
    """
    if not callable(fn):
        raise ValueError(f"Invalid value for 'fn': expected a callable, got {type(fn).__name__}.")
    points = _grid(grid)
    retries = check_positive_int("retries", retries, minimum=0)
    directory = _checkpoint_dir(checkpoint_dir)
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    paths = {}
    if directory is not None:
        paths = {i: directory / f"point-{_fingerprint(name, p)}.pkl" for i, p in enumerate(points)}
    loaded = _load_finished(paths, _load_pickle)
    # a partial, not submit(fn, **p): dask's submit would take parameters named e.g. key= or workers=
    jobs = {i: partial(fn, **p) for i, p in enumerate(points) if i not in loaded}

    def save(i: int, value: Any) -> None:
        if i in paths:
            _save_pickle(paths[i], value)

    run = _execute(jobs, executor, retries, progress, "sweep", save, len(loaded))
    results = {**loaded, **run.results}
    ordered = [results.get(i) for i in range(len(points))]
    if run.failed:
        raise SweepError(run.failed, ordered)
    return ordered


@contextmanager
def dask_executor(
    address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1, **cluster_options: Any
) -> Iterator[cf.Executor]:
    """An Executor on a ``dask.distributed`` cluster, closed on exit.

    Parameters
    ----------
    address : str, optional
        A running scheduler's address (e.g. ``"tcp://10.0.0.5:8786"``). Default: start a
        ``LocalCluster`` of ``n_workers`` worker processes (no dashboard, logs at ERROR level).
    n_workers, threads_per_worker : int
        Size of the local cluster (ignored with ``address``). Its workers start with dask's
        ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``, ...) except
        ``MALLOC_TRIM_THRESHOLD_=65536``: with it a converged CMC fit took 1.5–1.8× the CPU time
        (0.54 s against 0.35 s; ``benchmarks/group.py --worker-cpu``). The variables the nanny sets
        in this process's environment are restored on exit.
    **cluster_options
        Further ``LocalCluster`` arguments (e.g. ``local_directory``, ``memory_limit``).

    Yields
    ------
    concurrent.futures.Executor
        ``client.get_executor(pure=False)`` (every submission is a new task, so a resubmitted task
        runs again); its ``client`` attribute is the ``distributed.Client``.
    """
    import dask
    from distributed import Client, LocalCluster

    if address is not None and cluster_options:
        raise ValueError(
            f"Invalid arguments: {', '.join(map(repr, cluster_options))} configure a local cluster, but "
            f"'address' connects to a running one ({address!r})."
        )
    n_workers = check_positive_int("n_workers", n_workers)
    threads_per_worker = check_positive_int("threads_per_worker", threads_per_worker)
    environ = {k: v for k, v in dask.config.get(_PRE_SPAWN).items() if k != "MALLOC_TRIM_THRESHOLD_"}
    caller = {k: os.environ.get(k) for k in environ}  # the nanny writes these into this process's environ
    cluster = None
    try:
        if address is None:
            options = {"processes": True, "dashboard_address": None, "silence_logs": logging.ERROR, **cluster_options}
            with dask.config.set({_PRE_SPAWN: environ}):
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, **options)
        with Client(address if cluster is None else cluster, set_as_default=False) as client:
            executor = client.get_executor(pure=False)
            executor.client = client
            yield executor
    finally:
        if cluster is not None:
            cluster.close()
        for key, value in caller.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------------
# the shared loop


@dataclasses.dataclass
class _Run:
    results: dict[int, Any] = dataclasses.field(default_factory=dict)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)
    retried: dict[int, int] = dataclasses.field(default_factory=dict)


class _InProcess(cf.Executor):
    """Runs each task at submission, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:
            future.set_exception(err)
        return future


class _Pool:
    """The executor in use: the user's, replaced by a fresh one if it was a ProcessPoolExecutor that broke."""

    def __init__(self, executor: cf.Executor | None):
        self.current = _InProcess() if executor is None else executor
        self.window = 1 if executor is None else sys.maxsize  # in-process: one task at a time
        self.owned: list[cf.Executor] = []

    def submit(self, job: Callable[[], Any]) -> tuple[cf.Future, cf.Executor]:
        try:
            return self.current.submit(job), self.current
        except BrokenProcessPool:
            self.renew(self.current)
            return self.current.submit(job), self.current

    def renew(self, broken: cf.Executor) -> None:
        if broken is not self.current or not isinstance(broken, cf.ProcessPoolExecutor):
            return
        logger.warning("A worker process died and broke the process pool; continuing on a fresh pool.")
        self.current = cf.ProcessPoolExecutor(
            max_workers=getattr(broken, "_max_workers", None),
            mp_context=getattr(broken, "_mp_context", None),
            initializer=getattr(broken, "_initializer", None),
            initargs=getattr(broken, "_initargs", ()),
        )
        self.owned.append(self.current)

    def close(self) -> None:
        for executor in self.owned:
            executor.shutdown(wait=True, cancel_futures=True)


def _execute(
    jobs: dict[int, Callable[[], Any]],
    executor: cf.Executor | None,
    retries: int,
    progress: bool,
    desc: str,
    on_result: Callable[[int, Any], None],
    done_before: int,
) -> _Run:
    """Run ``jobs[i]()`` for every i, retrying tasks whose worker died; ``on_result`` as each finishes
    (``done_before``: tasks loaded from checkpoints, for the progress bar)."""
    pool, run, queue = _Pool(executor), _Run(), deque(jobs)
    running: dict[cf.Future, tuple[int, cf.Executor]] = {}
    bar = tqdm(total=len(jobs) + done_before, initial=done_before, desc=desc, unit="task", disable=not progress)
    try:
        while queue or running:
            while queue and len(running) < pool.window:
                i = queue.popleft()
                try:
                    future, used = pool.submit(jobs[i])
                except Exception as err:  # e.g. a shut-down executor: the task cannot run at all
                    run.failed[i] = f"could not submit: {_reason(err)}"
                    continue
                running[future] = (i, used)
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                i, used = running.pop(future)
                lost = _settle(future, i, run, retries, on_result, desc)
                if lost is None:
                    bar.update()
                else:
                    if isinstance(lost, BrokenProcessPool):
                        pool.renew(used)
                    queue.append(i)
    finally:
        for future in running:
            future.cancel()
        bar.close()
        pool.close()
    return run


def _settle(future: cf.Future, i: int, run: _Run, retries: int, on_result: Callable, desc: str) -> BaseException | None:
    """Record a finished task's result or failure (None), or count a retry and return the error that
    says its worker died."""
    error = cf.CancelledError("task cancelled") if future.cancelled() else future.exception()
    attempts = run.retried.get(i, 0)
    if error is None:
        run.results[i] = future.result()
        on_result(i, run.results[i])
    elif not _worker_died(error):
        run.failed[i] = _reason(error)
    elif attempts >= retries:
        run.failed[i] = f"worker died {attempts + 1} time(s); {_reason(error)}"
    else:
        run.retried[i] = attempts + 1
        logger.warning(
            "%s: task %d lost its worker (%s); retry %d of %d.", desc, i, _reason(error), attempts + 1, retries
        )
        return error
    return None


def _worker_died(error: BaseException) -> bool:
    kinds: tuple[type, ...] = (BrokenProcessPool, cf.CancelledError, OSError)
    distributed = sys.modules.get("distributed")  # a KilledWorker can only come from a loaded distributed
    if distributed is not None:
        kinds += (distributed.KilledWorker,)
    return isinstance(error, kinds)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


# --------------------------------------------------------------------------------------------------
# inputs


def _subjects(spectra: Any, names: Sequence[str] | None) -> tuple[tuple[str, ...], list]:
    if isinstance(spectra, Mapping):
        names = tuple(spectra) if names is None else names
        spectra = list(spectra.values())
    elif isinstance(spectra, Sequence) and not isinstance(spectra, str):
        spectra = list(spectra)
    else:
        raise ValueError(
            f"Invalid value for 'spectra': expected a sequence of spectra or a mapping name -> spectrum, "
            f"got {type(spectra).__name__}."
        )
    if not spectra:
        raise ValueError("Invalid value for 'spectra': expected at least one spectrum, got none.")
    if names is None:
        return tuple(f"subject{i:03d}" for i in range(len(spectra))), spectra
    names = tuple(names) if not isinstance(names, str) else (names,)
    if len(names) != len(spectra) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"Invalid value for 'names': expected {len(spectra)} non-empty strings, one per spectrum, "
            f"got {len(names)} name(s): {names[:5]!r}."
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Invalid value for 'names': expected unique names, got duplicates {duplicates!r}.")
    return names, spectra


def _grid(grid: Any) -> list[dict[str, Any]]:
    if isinstance(grid, Mapping):
        for key, values in grid.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray | torch.Tensor):
                raise ValueError(
                    f"Invalid value for 'grid[{key!r}]': expected a list of values, got {type(values).__name__}."
                )
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    elif isinstance(grid, Sequence) and not isinstance(grid, str):
        points = list(grid)
        for i, point in enumerate(points):
            if not isinstance(point, Mapping) or not all(isinstance(k, str) for k in point):
                raise ValueError(
                    f"Invalid value for 'grid[{i}]': expected a dict of keyword arguments, got {point!r:.60}."
                )
        points = [dict(p) for p in points]
    else:
        raise ValueError(f"Invalid value for 'grid': expected a list of dicts or a dict of lists, got {grid!r:.60}.")
    if not points:
        raise ValueError("Invalid value for 'grid': expected at least one point, got none.")
    return points


# --------------------------------------------------------------------------------------------------
# checkpoints


def _checkpoint_dir(checkpoint_dir: Any) -> Path | None:
    if checkpoint_dir is None:
        return None
    try:
        directory = Path(checkpoint_dir)
    except TypeError as err:
        raise ValueError(
            f"Invalid value for 'checkpoint_dir': expected a directory path, got {type(checkpoint_dir).__name__}."
        ) from err
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"Invalid value for 'checkpoint_dir': expected a directory, got the file {str(directory)!r}.")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _safe(name: str) -> str:
    """A file-name-safe version of ``name`` (the hash beside it keeps names that clash apart)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


def _canonical(value: Any) -> Any:
    """``value`` with tensors as NumPy arrays and objects as dicts of their fields, which dask hashes
    the same way in every process (it falls back to unstable pickles for tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__qualname__,
            {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        )
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [type(value).__name__, *(_canonical(v) for v in value)]
    if hasattr(value, "__dict__") and not callable(value):
        return (type(value).__qualname__, _canonical(vars(value)))
    return value


def _fingerprint(*parts: Any) -> str:
    try:
        return tokenize(*(_canonical(p) for p in parts), ensure_deterministic=True)[:16]
    except TokenizationError as err:
        raise ValueError(
            f"Invalid value for 'checkpoint_dir': an input has no stable hash to key its checkpoint ({err}); "
            "run without checkpoint_dir or pass plain arrays and numbers."
        ) from err


def _load_finished(paths: dict[int, Path], load: Callable[[Path], Any]) -> dict[int, Any]:
    loaded = {}
    for i, path in paths.items():
        if path.exists():
            try:
                loaded[i] = load(path)
            except (ValueError, OSError, pickle.UnpicklingError, EOFError) as err:
                logger.warning("Ignoring unreadable checkpoint %s (%s); recomputing it.", path, _reason(err))
    if loaded:
        logger.info("Loaded %d of %d finished tasks from checkpoints.", len(loaded), len(paths))
    return loaded


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _save_pickle(path: Path, value: Any) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(value, file)
        os.replace(tmp, path)  # never a half-written file under the final name
    except BaseException:
        os.unlink(tmp)
        raise

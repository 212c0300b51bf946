"""The ``thalia`` command: ``demo``, ``fit``, ``simulate``, ``group`` and ``info``.

Exit codes: 0 success; 1 the job ran but failed (a failed fit, failed subjects; results are written)
or an internal error; 2 bad input or usage (one line on stderr saying what is wrong and how to fix it,
no traceback, nothing written); 130 interrupted. Reference: ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import traceback
from pathlib import Path

from thalia._logging import logger

__all__ = ["main"]

MODELS = ("tcm", "cmc", "cmm_nmda")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A command-line mistake found by argparse (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line (raised, so that main decides the exit code)."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _write(stream, line: str) -> None:
    """One line to the terminal (the command's output; the library itself only logs)."""
    stream.write(f"{line}\n")
    stream.flush()


def _channels(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected channel names separated by commas, got {text!r}")
    return names


def _common(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(out), help=f"output folder (default: {out})")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="log every step (and tracebacks of internal errors)")


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="tcm", type=str.lower,
        help=f"neural mass model: {', '.join(MODELS)} (default: tcm)",
    )  # fmt: skip
    parser.add_argument(
        "--channels", type=_channels, default=None,
        help="channels to average, comma-separated (case and trailing dots ignored; default: all EEG/MEG channels, "
        "or all power columns of a spectrum file)",
    )  # fmt: skip
    parser.add_argument(
        "--fmin", type=float, default=None,
        help="lowest frequency fitted, Hz (default: 1 for a recording, a spectrum file's lowest)",
    )  # fmt: skip
    parser.add_argument(
        "--fmax", type=float, default=None,
        help="highest frequency fitted, Hz (default: 45 for a recording, a spectrum file's highest)",
    )  # fmt: skip
    parser.add_argument("--method", default=None, help="spectral estimate of a recording: welch (default), multitaper")
    parser.add_argument("--resolution", type=float, default=None, help="frequency resolution, Hz (default: 0.25)")
    parser.add_argument("--notch", type=float, default=None, help="mains frequency to notch out with harmonics, Hz")
    parser.add_argument(
        "--weighting", default="staged", choices=("staged", "spm", "relative"),
        help="staged (default: the peaks with SPM's precision, then the whole log spectrum), spm, or relative",
    )  # fmt: skip
    parser.add_argument("--max-iter", type=int, default=32, help="most iterations per fitting stage (default: 32)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``thalia`` command."""
    parser = _Parser(prog="thalia", description="Thalamo-cortical modelling: fit neural mass models to M/EEG "
                     "spectra, simulate spiking circuits, write reports.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"thalia {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser("demo", help="fit TCM to the bundled resting EEG, simulate the default circuit, report")
    demo.add_argument("--duration", type=float, default=2.0, help="simulated seconds of the circuit (default: 2)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the spiking simulation (default: 0)")
    demo.add_argument("--max-iter", type=int, default=32, help="most iterations per fitting stage (default: 32)")
    _common(demo, "out/demo")

    fit = commands.add_parser("fit", help="fit a neural mass model to the spectrum of a recording or spectrum file")
    fit.add_argument("data", help="recording (EDF, BDF, FIF, BrainVision .vhdr, ...) or spectrum (.csv, .npy, .npz)")
    _data_options(fit)
    _common(fit, "out/fit")

    simulate = commands.add_parser("simulate", help="run a spiking circuit preset and measure its rhythms")
    simulate.add_argument("preset", help="circuit preset (see 'thalia info'), e.g. thalamocortical")
    simulate.add_argument("--duration", type=float, default=2.0, help="simulated seconds recorded (default: 2)")
    simulate.add_argument("--warmup", type=float, default=0.5, help="seconds simulated first, not recorded (0.5)")
    simulate.add_argument("--dt", type=float, default=0.1, help="time step, ms (default: 0.1)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    simulate.add_argument("--nwb", action="store_true", help="also export the spike trains to spikes.nwb (pynwb)")
    _common(simulate, "out/simulate")

    group = commands.add_parser("group", help="fit every subject, then parametric empirical Bayes (PEB)")
    group.add_argument("data", nargs="+", help="one recording or spectrum file per subject")
    group.add_argument("--scheduler", default=None, help="address of a Dask scheduler (default: this machine)")
    group.add_argument("--workers", type=int, default=1, help="local Dask worker processes (default: 1, in process)")
    _data_options(group)
    _common(group, "out/group")

    info = commands.add_parser("info", help="versions, threads, devices, models, presets and bundled data")
    info.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    info.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    return parser


def _version() -> str:
    from thalia import __version__

    return __version__


def _check(args) -> None:
    """Checks of option values that argparse cannot express (before anything runs or is written)."""
    if getattr(args, "model", "tcm") not in MODELS:
        allowed = ", ".join(MODELS)
        raise ValueError(f"Invalid value for '--model': allowed {allowed}, got {args.model!r}.")
    if getattr(args, "method", None) not in (None, "welch", "multitaper"):
        raise ValueError(f"Invalid value for '--method': allowed welch, multitaper, got {args.method!r}.")
    if getattr(args, "max_iter", 1) < 1:
        raise ValueError(f"Invalid value for '--max-iter': expected an integer >= 1, got {args.max_iter}.")
    if getattr(args, "workers", 1) < 1:
        raise ValueError(f"Invalid value for '--workers': expected an integer >= 1, got {args.workers}.")
    if getattr(args, "nwb", False) and importlib.util.find_spec("pynwb") is None:
        raise ValueError("Invalid option '--nwb': it needs the optional package pynwb; pip install 'thalia[nwb]'.")
    out = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"Invalid value for '--out': {str(out)!r} exists and is not a folder.")


def _logging(args) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("thalia: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING)
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run the ``thalia`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        _write(sys.stderr, err)
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    args.progress = not args.quiet and sys.stderr.isatty()

    def say(message: str) -> None:
        if not args.quiet:
            _write(sys.stderr, f"thalia {args.command}: {message}")

    handler = _logging(args)
    previous = logger.level
    try:
        return _run(args, say)
    except (ValueError, FileNotFoundError) as err:
        _write(sys.stderr, f"thalia {args.command}: error: {err}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _write(sys.stderr, f"thalia {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug, or a failed job: one line, the traceback with --verbose
        from thalia.cli.jobs import JobFailed

        if isinstance(err, JobFailed):
            _write(sys.stderr, f"thalia {args.command}: failed: {err}")
        else:
            if args.verbose:
                traceback.print_exc()
            hint = "" if args.verbose else " (rerun with --verbose for the traceback)"
            _write(sys.stderr, f"thalia {args.command}: internal error: {type(err).__name__}: {err}{hint}")
        return EXIT_FAILED
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _run(args, say) -> int:
    from thalia.cli import jobs

    _check(args)
    if args.command == "info":
        for key, value in jobs.info().items():
            _write(sys.stdout, f"{key:>14}: {value}")
        return EXIT_OK
    run = {"demo": jobs.run_demo, "fit": jobs.run_fit, "simulate": jobs.run_simulate, "group": jobs.run_group}
    return run[args.command](args, say)

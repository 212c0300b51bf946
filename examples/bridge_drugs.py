"""The two scales on one question: the TCM fitted to the spiking circuit, and four drugs at both scales.

Runs the default thalamo-cortical circuit, fits the TCM to its LFP spectrum (priors from the
circuit), applies the ketamine, benzodiazepine, propofol and cholinergic presets to both models,
refits the TCM to the circuit under each drug (with the baseline's priors), and writes
``bridge_report.html`` and ``bridge_summary.json`` into the output folder (default: a new temporary folder)::

    python examples/bridge_drugs.py --out out/bridge            # about 10 minutes on one core
    python examples/bridge_drugs.py --duration-s 20             # shorter runs, noisier spectra
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from thalia.bridge import (  # noqa: E402
    PRESETS,
    circuit_parameters,
    compare_drugs,
    direction_probability,
    fit_circuit,
    inhibitory_parameters,
    parameter_shifts,
    preset,
    refit_circuit,
    simulate_lfp,
)
from thalia.report import HtmlReport  # noqa: E402
from thalia.report.bridge import add_bridge_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--duration-s", type=float, default=60.0, help="simulated seconds per circuit run")
    parser.add_argument("--seed", type=int, default=0, help="seed of every circuit run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small tensors)")
    args = parser.parse_args(argv)
    if args.duration_s <= 0:
        parser.error(f"--duration-s must be > 0 s, got {args.duration_s}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)  # a script may set it; the library never does
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="thalia_bridge_"))
    out.mkdir(parents=True, exist_ok=True)
    run = {"duration_ms": 1000.0 * args.duration_s, "seed": args.seed}

    start = time.perf_counter()
    baseline = simulate_lfp(**run)
    fit = fit_circuit(baseline)
    drugs = [preset(name) for name in PRESETS]
    comparisons = compare_drugs(drugs, mass=fit, baseline=baseline, **run)
    refits = {c.drug.name: refit_circuit(fit, c.lfp) for c in comparisons}
    inhibitory = inhibitory_parameters(fit)
    gaba_a = ("benzodiazepine", "propofol")
    with_default_priors = fit_circuit(baseline, priors="default")

    report = HtmlReport("thalia bridge: spiking circuit, neural mass model and drugs")
    add_bridge_section(report, fit, comparisons, refits, circuit_parameters=circuit_parameters(baseline.brain))
    priors = [
        {"priors": name, "F": f.posterior.F, "explained variance": f.explained_variance}
        for name, f in (("circuit", fit), ("default (TCM)", with_default_priors))
    ]
    report.add_table(priors, caption="The fit under the TCM's priors and under priors set from the circuit")
    report.write(out / "bridge_report.html")
    summary = {
        "explained_variance": fit.explained_variance,
        "free_energy": {"circuit_priors": fit.posterior.F, "default_priors": with_default_priors.posterior.F},
        "explained_variance_default_priors": with_default_priors.explained_variance,
        "refit_explained_variance": {name: f.explained_variance for name, f in refits.items()},
        "gamma_peaks": fit.gamma_peaks(),
        "gaba_a_inhibitory_parameters": {
            name: {
                "mean": direction_probability(fit, refits[name], inhibitory),
                "time_constant": direction_probability(fit, refits[name], ["T[0,1]"]),
            }
            for name in gaba_a
        },
        "gaba_a_parameter_shifts": {
            name: [row for row in parameter_shifts(fit, refits[name]) if row["parameter"] in inhibitory]
            for name in gaba_a
        },
        "comparison_tables": {c.drug.name: c.table() for c in comparisons},
        "agreement": [row for comparison in comparisons for row in comparison.agreement()],
        "wall_s": time.perf_counter() - start,
    }
    (out / "bridge_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"explained variance {fit.explained_variance:.3f}; wrote {out / 'bridge_report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The two scales on one question: the TCM fitted to the spiking circuit, and four drugs at both scales.

Runs the default thalamo-cortical circuit, fits the TCM to its LFP spectrum (priors from the
circuit), applies the ketamine, benzodiazepine, propofol and cholinergic presets to both models,
fits the baseline and each drug's spectrum at once to infer the drug's receptor-level effects (and,
as a control, a second run of the undrugged circuit with the next seed), and writes
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
    fit_circuit,
    fit_drug_effects,
    preset,
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
    effects = {c.drug.name: fit_drug_effects(fit, c.lfp) for c in comparisons}
    control = fit_drug_effects(fit, simulate_lfp(duration_ms=run["duration_ms"], seed=args.seed + 1))
    with_default_priors = fit_circuit(baseline, priors="default")

    report = HtmlReport("thalia bridge: spiking circuit, neural mass model and drugs")
    add_bridge_section(report, fit, comparisons, effects, circuit_parameters=circuit_parameters(baseline.brain))
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
        "gamma_peaks": fit.gamma_peaks(),
        "drug_effects": {
            name: {
                "explained_variance": joint.explained_variance,
                "effects": joint.table(),
                "gaba_a_direction": joint.direction_probability(["gaba_a", "gaba_a_decay"]),
            }
            for name, joint in {**effects, "control (undrugged, next seed)": control}.items()
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

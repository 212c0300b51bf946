"""The TCM forward model end to end: stable default, fixed point report, spectra, a figure.

Run with ``make demo`` (or ``python examples/tcm_forward_demo.py --out out/demo``). Writes
``tcm_spectrum.png`` and ``tcm_forward.json`` into the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from thalia.mass import TCM  # noqa: E402
from thalia.mass.stability import count_unstable_roots  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    freqs = torch.arange(1.0, 91.0, dtype=torch.float64)
    model = TCM()
    p = model.default_parameters()
    fixed = model.fixed_point(p)
    start = time.perf_counter()
    spectrum = model.csd(p, freqs)
    elapsed_ms = (time.perf_counter() - start) * 1e3  # fixed point + Jacobian + CSD, warm
    delayed = count_unstable_roots(model, p)
    variants = {
        "default": spectrum,
        "CT ×e^0.5 (slower cortico-thalamic delay)": model.csd(p.replace(CT=0.5), freqs),
        "no delays": TCM(delay_mode="none").csd(p, freqs),
        "GABA-A decay ×e^0.5": model.csd(p.replace(T=[[0.0, 0.5, 0, 0, 0, 0]]), freqs),
    }

    fig, (ax_spec, ax_v) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    for label, csd in variants.items():
        ax_spec.plot(freqs, csd.psd[:, 0], label=label, lw=2 if label == "default" else 1)
    ax_spec.set(xscale="linear", yscale="log", xlabel="frequency (Hz)", ylabel="CSD (a.u.)")
    ax_spec.set_title("TCM spectrum at the stable default")
    ax_spec.legend(fontsize="small")
    v_star = model.state_view(fixed.x.detach())
    pops = ["SS", "SP", "SI", "DP", "DI", "TP", "RT", "RC"]
    ax_v.plot([float(v_star["V", pop][0]) for pop in pops], pops, "o", color="tab:gray")
    ax_v.axvline(-51.0, color="k", ls="--", lw=0.8, label="firing threshold")
    ax_v.set(xlim=(-60, -40), xlabel="V* (mV)", title="fixed point")
    ax_v.legend(fontsize="small")
    fig.tight_layout()
    figure = args.out / "tcm_spectrum.png"
    fig.savefig(figure, dpi=120)

    peak = int(torch.argmax(spectrum.psd[20:, 0])) + 20
    summary = {
        "fixed_point": fixed.report(),
        "leading_eigenvalue": [fixed.leading_eigenvalue.real, fixed.leading_eigenvalue.imag],
        "unstable_roots_with_delays": delayed.n_unstable,
        "gamma_peak_hz": float(freqs[peak]),
        "forward_spectrum_ms": elapsed_ms,
        "psd": spectrum.psd[:, 0].tolist(),
        "freqs_hz": freqs.tolist(),
    }
    (args.out / "tcm_forward.json").write_text(json.dumps(summary, indent=1))
    print(f"{fixed.report()}\ndelayed linearisation: {delayed.n_unstable} unstable roots")
    print(f"gamma peak {summary['gamma_peak_hz']:.0f} Hz; spectrum in {elapsed_ms:.1f} ms")
    print(f"wrote {figure} and {args.out / 'tcm_forward.json'}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())

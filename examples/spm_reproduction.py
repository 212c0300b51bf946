"""thalia's CMC and CMM_NMDA next to SPM's own spectra.

Reads SPM's parameter tables and recorded outputs (``tests/reference/data/spm``), evaluates the CSD
with thalia in SPM's reproduction mode and with the exact Jacobian, prints the largest relative
differences and writes ``out/spm/spm_reproduction.png``.

Run from the repository root::

    python examples/spm_reproduction.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from thalia.mass import spm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "data" / "spm"
CASES = {
    "CMC, prior mean": ("cmc", "cmc_priors.csv", "pE", "cmc_csd_prior.json"),
    "CMC, SPM's posterior mean": ("cmc", "cmc_nlsi_params.csv", "Ep", "cmc_csd_posterior.json"),
    "CMM_NMDA, prior mean": ("cmm_nmda", "cmm_nmda_priors.csv", "pE", "cmm_nmda_csd_prior.json"),
}


def compare(name: str, table: str, column: str, record: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    ref = json.loads((REFERENCE / record).read_text())
    P = spm.read_spm_parameters(REFERENCE / table, column)
    ours = {
        "SPM-reproduction mode": spm.csd(name, P, ref["Hz"])[:, 0, 0],
        "exact Jacobian": spm.csd(name, P, ref["Hz"], jacobian="exact")[:, 0, 0],
    }
    spm_csd = np.asarray(ref["csd_re"]) + 1j * np.asarray(ref["csd_im"])
    return np.asarray(ref["Hz"]), {"SPM (Octave)": spm_csd, **ours}


def main() -> None:
    out = ROOT / "out" / "spm"
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(CASES), figsize=(4.2 * len(CASES), 3.6), constrained_layout=True)
    for ax, (title, case) in zip(axes, CASES.items(), strict=True):
        freqs, spectra = compare(*case)
        reference = spectra["SPM (Octave)"]
        for (label, values), style in zip(spectra.items(), ("-", "--", ":"), strict=True):
            ax.semilogy(freqs, values.real, style, label=label, lw=2 if style == "-" else 1.5)
            if label != "SPM (Octave)":
                error = np.abs(values - reference).max() / np.abs(reference).max()
                print(f"{title:28s} {label:22s} max relative difference from SPM: {error:.2e}")
        ax.set(title=title, xlabel="frequency (Hz)", ylabel="CSD (a.u.)")
        ax.legend(fontsize=8)
    path = out / "spm_reproduction.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

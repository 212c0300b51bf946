"""The bridge's report section: figures and tables in a self-contained HTML page."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from thalia.bridge import DrugComparison, bridge_model, fit_drug_effects, fit_tcm, preset
from thalia.report import HtmlReport
from thalia.report.bridge import add_bridge_section
from thalia.spectra import CSD

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def spectrum():
    model = bridge_model()
    freqs = torch.arange(1.0, 121.0, dtype=torch.float64)
    return CSD(freqs, model.csd(model.space.prior_mean(), freqs).data, ("cortex",))


@pytest.fixture(scope="module")
def fit(spectrum):
    return fit_tcm(spectrum, 100, max_iter=3)


def test_section_has_the_fit_the_drug_and_its_effects(fit, spectrum, tmp_path):
    freqs = np.arange(4.0, 91.0)
    base = freqs**-1.0 * (1 + 2 * np.exp(-0.5 * ((freqs - 40.0) / 4.0) ** 2))
    slower = freqs**-1.0 * (1 + 2 * np.exp(-0.5 * ((freqs - 35.0) / 4.0) ** 2))
    power = {("circuit", "baseline"): base, ("circuit", "drug"): slower, ("mass", "baseline"): base,
             ("mass", "drug"): slower}  # fmt: skip
    comparison = DrugComparison(preset("benzodiazepine"), freqs, power, {"baseline": {}, "drug": {}})
    rows = comparison.agreement()
    assert [row["agrees"] for row in rows] == [True, True]  # the gamma peak moved from 40 to 35 Hz at both scales
    effects = fit_drug_effects(fit, spectrum, n_segments=100, effects=("gaba_a", "gaba_a_decay"), max_iter=2)
    report = add_bridge_section(HtmlReport("bridge"), fit, [comparison], {"benzodiazepine": effects})
    path = report.write(tmp_path / "bridge.html")
    html = path.read_text()
    assert "Spiking circuit and neural mass model" in html and "Drug: benzodiazepine" in html
    # no peak table: the default TCM peaks near 37 Hz, outside the circuit's low- and high-gamma bands
    assert html.count("<img") == 3 and html.count("<table>") == 3
    assert "Mass-model effects of benzodiazepine" in html
    assert html.count("<td>gaba_a</td>") == 1 and html.count("<td>gaba_a_decay</td>") == 1

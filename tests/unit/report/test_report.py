"""Report building blocks and fit summaries: HtmlReport, R² of the log spectrum, the dominant peak,
the posterior table."""

from __future__ import annotations

import base64
import math
import re

import matplotlib
import numpy as np
import pytest
import torch

from thalia.inference import Posterior
from thalia.inference.posterior import Status
from thalia.report import HtmlReport
from thalia.report.fit import dominant_peak_hz, posterior_table, r2_log

matplotlib.use("Agg")


def test_html_report_is_self_contained_and_escaped(tmp_path):
    import matplotlib.pyplot as plt

    report = HtmlReport("Run <1>")
    report.add_heading("A & B")
    report.add_text("first paragraph\n\nsecond <b>")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    report.add_figure(fig, caption="a line")
    plt.close(fig)
    report.add_table([{"name": "x", "value": 0.123456789}, {"name": "y", "extra": 3}], caption="numbers")
    path = report.write(tmp_path / "sub" / "report.html")
    html = path.read_text()
    assert "<title>Run &lt;1&gt;</title>" in html and "<h2>A &amp; B</h2>" in html and "second &lt;b&gt;" in html
    assert html.count("<p>") == 2
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", html).group(1)
    assert head == "<th>name</th><th>value</th><th>extra</th>"  # union of keys, first-seen order
    assert "<td>0.1235</td>" in html and "<td>3</td>" in html
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_html_report_bad_input():
    report = HtmlReport("x")
    with pytest.raises(ValueError, match=r"'rows': expected a list of dicts, got dict"):
        report.add_table({"a": 1})
    with pytest.raises(ValueError, match=r"'level': allowed 2, 3, 4, got 1"):
        report.add_heading("x", level=1)


def test_r2_log_against_a_hand_computed_value():
    data = np.array([1.0, 10.0, 100.0])
    model = np.array([1.0, 10.0, 10.0])  # ln errors 0, 0, ln 10; ln data = 0, ln10, 2 ln10
    assert r2_log(data, model) == pytest.approx(1 - math.log(10) ** 2 / (2 * math.log(10) ** 2))
    assert r2_log(data, data) == 1.0
    assert math.isnan(r2_log(data, np.array([1.0, 0.0, 1.0])))


def test_dominant_peak_of_a_known_spectrum():
    freqs = np.arange(1.0, 45.25, 0.25)
    power = 1.0 / freqs**2 * (1 + 8 * np.exp(-0.5 * ((freqs - 10.3) / 0.8) ** 2))
    assert dominant_peak_hz(freqs, power) == pytest.approx(10.3, abs=0.1)
    assert dominant_peak_hz(freqs, 1.0 / freqs**2) is None  # pure 1/f: no peak


def test_posterior_table_matches_the_posterior():
    mean = torch.tensor([0.2, -1.0, 5.0], dtype=torch.float64)
    cov = torch.diag(torch.tensor([0.04, 0.01, 0.0], dtype=torch.float64))
    posterior = Posterior(
        mean=mean, cov=cov, prior_mean=torch.zeros(3, dtype=torch.float64),
        prior_cov=torch.diag(torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)), F=-1.0, L=(0.0, 0.0, 0.0),
        noise_log_precision=torch.zeros(1), noise_cov=torch.zeros(1, 1), status=Status.CONVERGED, message="",
        iterations=1, trace=[], data=torch.zeros(2), predicted=torch.zeros(2), labels=("CT", "G", "fixed"),
        natural={"CT": ("log", 8.0, "ms")},
    )  # fmt: skip
    rows = posterior_table(posterior, level=0.9)
    assert [r["parameter"] for r in rows] == ["CT", "G"]  # the fixed parameter is left out
    lower, upper = posterior.credible_interval(0.9)
    for k, row in enumerate(rows):
        assert row["90% CI low"] == pytest.approx(float(lower[k])) and row["90% CI high"] == pytest.approx(
            float(upper[k])
        )
        assert row["prior sd"] == pytest.approx(math.sqrt([1.0, 0.5][k]))
    assert rows[0]["natural"] == pytest.approx(8.0 * math.exp(0.2)) and rows[0]["unit"] == "ms"
    assert rows[0]["natural 90% CI"] == f"[{8 * math.exp(float(lower[0])):.4g}, {8 * math.exp(float(upper[0])):.4g}]"
    assert "natural" not in rows[1]

"""A self-contained HTML report: headings, text, tables and matplotlib figures in one file.

Figures are embedded as base64 PNG, so the file opens anywhere without its neighbours. Every report
section of thalia (fit, spiking, bridge) is built from these few blocks::

    report = HtmlReport("My run")
    report.add_heading("Spectrum")
    report.add_figure(fig, caption="Data vs model")
    report.add_table([{"parameter": "G", "mean": 0.1}], caption="Posterior")
    report.write("out/report.html")           # atomic: a temporary file, then os.replace
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import os
from pathlib import Path
from typing import Any

from ..io.atomic import write_text_atomic

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { margin-top: 1.8em; color: #334; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption, caption { color: #555; font-size: .9em; text-align: left; caption-side: bottom; padding-top: .3em; }
"""


def _format_cell(value: Any) -> str:
    """A table cell: numbers with 4 significant digits, everything else as text (HTML-escaped)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return html.escape(str(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{float(value):.4g}"


class HtmlReport:
    """A report assembled block by block and written as one self-contained HTML file.

    Parameters
    ----------
    title : str
        Shown as the page title and the first heading.
    """

    def __init__(self, title: str):
        self.title = str(title)
        self._blocks: list[str] = []

    def add_heading(self, text: str, level: int = 2) -> None:
        """A section heading (``level`` 2 by default; the title is level 1)."""
        if level not in (2, 3, 4):
            raise ValueError(f"Invalid value for 'level': allowed 2, 3, 4, got {level!r}.")
        self._blocks.append(f"<h{level}>{html.escape(str(text))}</h{level}>")

    def add_text(self, text: str) -> None:
        """A paragraph of plain text (HTML-escaped; blank lines start new paragraphs)."""
        for paragraph in str(text).split("\n\n"):
            if paragraph.strip():
                self._blocks.append(f"<p>{html.escape(paragraph.strip())}</p>")

    def add_figure(self, fig, caption: str = "", dpi: int = 110) -> None:
        """Embed a matplotlib figure as a base64 PNG (the figure itself is left open)."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._blocks.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">{text}</figure>'
        )

    def add_table(self, rows: list[dict], caption: str = "") -> None:
        """A table from a list of dicts; the columns are the union of keys, in first-seen order."""
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"Invalid value for 'rows': expected a list of dicts, got {type(rows).__name__}.")
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_format_cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def to_html(self) -> str:
        """The whole page as one string."""
        title = html.escape(self.title)
        body = "\n".join(self._blocks)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (temporary file + ``os.replace``); returns the path."""
        return write_text_atomic(path, self.to_html())

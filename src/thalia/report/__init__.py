"""Reports: self-contained HTML pages (figures embedded) for fits, spiking runs and comparisons."""

from .html import HtmlReport

__all__ = ["HtmlReport"]

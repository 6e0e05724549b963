"""The lab report: ``write_report(["lab"], "report")`` -> ``report/index.html`` (self-contained) + ``report.md``."""

from cnnlab.report.render import collect_results, render_html, render_markdown, write_report

__all__ = ["collect_results", "render_html", "render_markdown", "write_report"]

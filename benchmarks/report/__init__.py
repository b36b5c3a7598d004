"""The report: tables, figures and documents rendered from stored rows only."""

from benchmarks.report.format import markdown_table
from benchmarks.report.render import render_report
from benchmarks.report.tables import arm_table

__all__ = ["arm_table", "markdown_table", "render_report"]

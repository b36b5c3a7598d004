"""Tables and documents as text: Markdown, LaTeX (tables, and a complete document) and one
self-contained HTML page with its figures embedded."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import markdown
import pandas as pd


def markdown_table(table: pd.DataFrame) -> str:
    table = table.copy()
    for column in table.columns:  # counts stored as floats print as 10000, not 1e+04
        if table[column].dtype == object:  # numbers among notes ("n/a (...)"): as floatfmt
            table[column] = table[column].map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
            continue
        if table.empty:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().all() and (values == values.round()).all() and values.abs().max() < 2**53:
            table[column] = values.astype("Int64")
    blanks = table.astype(object).where(table.notna(), None)  # tabulate blanks None, not NaN
    return blanks.to_markdown(index=False, floatfmt=".4g", missingval="")


def latex_table(table: pd.DataFrame) -> str:
    """A LaTeX tabular with special characters (%, _, &, #) escaped."""
    return table.to_latex(index=False, float_format="%.4g", escape=True, na_rep="")


def html_document(markdown_text: str, folder: Path) -> str:
    """The report as one self-contained HTML page: tables rendered, every PNG it shows
    embedded as a data URI (the page needs no other file)."""

    def embed(match: re.Match) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    body = markdown.markdown(
        re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", embed, markdown_text), extensions=["tables"]
    )
    style = (
        "body{font-family:sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;font-size:0.85rem;margin:1rem 0}"
        "td,th{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:right}"
        "img{max-width:100%}code{background:#f4f4f4}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>vlae-bench report</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def latex_document(tables: list[str], figures: list[tuple[str, str]] = ()) -> str:
    """A complete LaTeX document holding the report's tables (booktabs, UTF-8) and its
    figures (``(caption, PNG file)``, beside the document)."""
    head = [
        r"\documentclass{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage[T1]{fontenc}",
        r"\usepackage{booktabs}", r"\usepackage{newunicodechar}", r"\usepackage{graphicx}",
        r"\usepackage{caption}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\newunicodechar{−}{\ensuremath{-}}", r"\newunicodechar{β}{\ensuremath{\beta}}",
        r"\newunicodechar{λ}{\ensuremath{\lambda}}", r"\newunicodechar{ø}{\o}",
        r"\begin{document}", r"\footnotesize",
    ]  # fmt: skip
    body = []
    for item in tables:
        if item.startswith("% "):
            body.append(r"\section*{" + latex_escape(item[2:]) + "}")
        else:
            body.append(r"\resizebox{\textwidth}{!}{" + item.strip() + "}")
    if figures:
        body.append(r"\section*{Figures}")
    for caption, file in figures:
        body += [
            r"\begin{figure}[h]\centering",
            rf"\includegraphics[width=0.9\linewidth]{{{file}}}",
            rf"\caption*{{{latex_escape(caption)}}}",
            r"\end{figure}",
        ]
    return "\n".join(head + body + [r"\end{document}", ""])


def latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                          ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):  # fmt: skip
        text = text.replace(char, escaped)
    return text

"""A self-contained HTML page (PNG plots embedded as base64, no external files or scripts).

The page is a list of sections, each a heading, one line saying what it shows, and a body (a
figure or a table). Tables round their numbers and fit the page's width: long cells (NB201 arch
strings) wrap instead of widening the table.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; margin-bottom: 0.2em; }
p.what { margin-top: 0; color: #444; }
table { border-collapse: collapse; font-size: 0.88em; width: 100%; table-layout: auto; }
td, th { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
code { background: #f4f4f4; padding: 1px 3px; overflow-wrap: anywhere; font-size: 0.95em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def fmt(value: object, digits: int = 2) -> str:
    """A value as a person reads it: floats rounded, integers as they are, None/NaN as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def _cell(value: object, digits: int, code: bool) -> str:
    num = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = html.escape(fmt(value, digits))
    if code and not num and value is not None:
        text = f"<code>{text}</code>"
    return f"<td class='num'>{text}</td>" if num else f"<td>{text}</td>"


def kv_table(items: Mapping[str, object], digits: int = 2) -> str:
    """Two columns: what, value (numbers rounded)."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_cell(v, digits, code=False)}</tr>"
                   for k, v in items.items())
    return f"<table>{rows}</table>"


def frame_table(df: pd.DataFrame, digits: int = 2, code_columns: Sequence[str] = ("arch", "architecture")) -> str:
    """A DataFrame as a page-wide table, numbers rounded, arch strings in ``<code>`` (they wrap)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for rec in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, rec):
            v = v.item() if hasattr(v, "item") else v
            cells.append(_cell(v, digits, code=col in code_columns))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def image(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def render_html(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The page as a string; ``sections`` are ``(heading, one line on what it shows, body html)``."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for heading, what, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if what:
            parts.append(f"<p class='what'>{html.escape(what)}</p>")
        parts.append(body)
    parts.append("</body></html>")
    return "\n".join(parts)

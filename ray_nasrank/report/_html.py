"""A self-contained HTML page (PNG plots embedded as base64, no external files or scripts)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
code { background: #f4f4f4; padding: 1px 4px; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _kv_table(items: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in items.items())
    return f"<table>{rows}</table>"


def render_html(title: str, summary: Mapping[str, object], images: Sequence[tuple[str, str | Path]],
                top: pd.DataFrame, artefacts: Mapping[str, str]) -> str:
    """The page as a string; ``images`` are ``(caption, png path)`` pairs read and embedded."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<h2>Summary</h2>", _kv_table(summary)]
    for caption, path in images:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(caption)}</h2>"
                     f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
    parts += ["<h2>Top architectures</h2>", top.to_html(index=False, escape=True, float_format="%.4g",
                                                         na_rep="")]
    parts += ["<h2>Artefacts</h2>", _kv_table(artefacts), "</body></html>"]
    return "\n".join(parts)

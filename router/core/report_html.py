"""The report as one self-contained HTML page: tables and charts (inline SVG from pygal), no
script, font, stylesheet or image fetched from anywhere, and readable printed."""

from __future__ import annotations

import sys
from html import escape
from typing import Any

import pygal
from pygal.etree import etree as svg_tree  # lxml (python-docx needs it), else xml.etree
from pygal.style import Style

from router.core.report import SUPPRESSED, Report
from router.core.report_render import BREAKDOWNS, duration

# pygal appends an import hook for its map plugins (pygal.maps.*, unused here) written for
# the old import protocol: each later failed import (an optional dependency probing) then
# raises ImportWarning, an error under `-W error`. The hook is taken out again.
sys.meta_path[:] = [
    finder for finder in sys.meta_path if type(finder).__name__ != "PluginImportFixer"
]

# Print-friendly: white ground, dark text, colours that stay apart in greyscale.
_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#000",
    foreground_subtle="#555",
    colors=("#1f4e79", "#c55a11", "#548235", "#7f6000", "#7030a0"),
    font_family="Arial, Helvetica, sans-serif",
)
_CSS = """
body { font-family: Arial, Helvetica, sans-serif; color: #111; margin: 2em; max-width: 60em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #999; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #333; font-size: 0.9em; }
.chart svg { width: 100%; max-width: 40em; height: auto; }
section { page-break-inside: avoid; break-inside: avoid; }
@media print { body { margin: 0; } .chart svg { max-width: 100%; } }
"""


def render_html(report: Report) -> str:
    """The whole page."""
    data = report.as_json()
    title = f"Prevent referrals {data['from']} to {data['to']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Decisions (one per referral form): <strong>{escape(str(data['total']))}</strong>."
        f" Time from arrival to forward to the police: median"
        f" <strong>{escape(duration(report.median_seconds))}</strong>, 90th percentile"
        f" <strong>{escape(duration(report.p90_seconds))}</strong>"
        f" ({report.forwards_timed} forwards timed).</p>",
    ]
    if not report.exact:
        parts.append(
            '<p class="note">Counts from 1 to 4 are shown as &lt;5 and left out of the charts,'
            " so that no child or adult can be recognised from a small number.</p>"
        )
    parts.append(_area_section(data["by_area"]))
    for key, heading in BREAKDOWNS:
        parts.append(_section(heading, data[key]))
    parts.append(
        '<p class="note">Dates are of arrival at the council inbox, in UTC. Figures are kept at'
        " decision time and hold nothing personal. Made by referral-router.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _area_section(by_area: dict[str, dict[str, Any]]) -> str:
    outcomes = list(next(iter(by_area.values())).keys())
    head = "".join(f"<th>{escape(o)}</th>" for o in outcomes)
    rows = "".join(
        f"<tr><td>{escape(area)}</td>"
        + "".join(f"<td>{escape(str(counts[o]))}</td>" for o in outcomes)
        + "</tr>"
        for area, counts in by_area.items()
    )
    chart = pygal.StackedBar(_config(), x_labels=list(by_area))
    for outcome in outcomes:
        chart.add(outcome, [_plotted(counts[outcome]) for counts in by_area.values()])
    return (
        "<section><h2>By area and outcome</h2>"
        f"<table><tr><th>area</th>{head}</tr>{rows}</table>"
        f'<div class="chart">{_svg(chart)}</div></section>'
    )


def _section(heading: str, counts: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(str(count))}</td></tr>"
        for name, count in counts.items()
    )
    chart = pygal.Bar(_config(), x_labels=list(counts), show_legend=False)
    chart.add(heading, [_plotted(count) for count in counts.values()])
    return (
        f"<section><h2>{escape(heading)}</h2>"
        f"<table><tr><th></th><th>decisions</th></tr>{rows}</table>"
        f'<div class="chart">{_svg(chart)}</div></section>'
    )


def _config() -> pygal.Config:
    config = pygal.Config()
    config.style = _STYLE
    config.js = []  # pygal's tooltips load a script from the web: none, self-contained
    config.width, config.height = 800, 360
    config.x_label_rotation = 20
    config.print_values = False
    config.show_y_guides = True
    config.min_scale = 1
    config.no_data_text = "no decisions"
    return config


def _plotted(count: Any) -> int | None:
    """A count as a chart may show it: a suppressed count (`<5`) is not drawn."""
    return None if count == SUPPRESSED else int(count)


def _svg(chart: Any) -> str:
    """The chart's SVG without pygal's inline script (its settings, for interactive
    tooltips a printed page does not have): the page holds no script at all."""
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if str(child.tag).rpartition("}")[2] == "script":
                parent.remove(child)
    return str(svg_tree.tostring(tree, encoding="unicode"))

"""The statistics report as text, csv, json or html (`report`, the monthly mail, the console).

The counts come from `router.core.report.build_report` (over `Journal.figures_between`, see
`router.commands.report.load_report`); this module only formats them. Counts from 1 to 4
are already `<5` in the report unless it is exact (small-number suppression).
"""

from __future__ import annotations

import csv
import io
import json

from router.core.report import Report

FORMATS = ("text", "csv", "json", "html")
# The breakdowns in the order every format shows them: (json key, heading).
BREAKDOWNS = (
    ("by_month", "By month"),
    ("by_age", "By age on the day of referral"),
    ("by_gender", "By gender (as the form gives it)"),
    ("by_sector", "By referring sector"),
)


def render(report: Report, form: str) -> str:
    """The report in one of `FORMATS`."""
    if form == "json":
        return json.dumps(report.as_json(), ensure_ascii=False) + "\n"
    if form == "csv":
        return render_csv(report)
    if form == "html":
        from router.core.report_html import render_html

        return render_html(report)
    return render_text(report)


def duration(seconds: float | None) -> str:
    """Seconds in words a board reads: `42 s`, `3 min 5 s`, `2 h 10 min`, `1 d 4 h`."""
    if seconds is None:
        return "no forwards"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"


def render_text(report: Report) -> str:
    """A plain-text report: the totals, then one small table per breakdown."""
    data = report.as_json()
    lines = [
        f"Prevent referrals received {data['from']} to {data['to']} (UTC)",
        f"Decisions: {data['total']}"
        + ("" if report.exact else "  (counts from 1 to 4 are shown as <5)"),
        f"Time from arrival to forward: median {duration(report.median_seconds)},"
        f" 90th percentile {duration(report.p90_seconds)}",
        "",
        "By area and outcome",
    ]
    outcomes = list(next(iter(data["by_area"].values())).keys())
    lines.append(f"  {'area':<20}" + "".join(f"{o:>14}" for o in outcomes))
    for area, counts in data["by_area"].items():
        lines.append(f"  {area:<20}" + "".join(f"{counts[o]!s:>14}" for o in outcomes))
    for key, heading in BREAKDOWNS:
        lines += ["", heading]
        lines += [f"  {name:<24}{count!s:>8}" for name, count in data[key].items()]
    return "\n".join(lines) + "\n"


def render_csv(report: Report) -> str:
    """One row per count: breakdown, key, outcome (by_area only), value."""
    data = report.as_json()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["breakdown", "key", "outcome", "value"])
    writer.writerow(["total", "", "", data["total"]])
    for area, counts in data["by_area"].items():
        for outcome, count in counts.items():
            writer.writerow(["by_area", area, outcome, count])
    for key, _ in BREAKDOWNS:
        for name, count in data[key].items():
            writer.writerow([key, name, "", count])
    for name, value in data["time_to_forward"].items():
        writer.writerow(["time_to_forward", name, "", "" if value is None else value])
    return out.getvalue()

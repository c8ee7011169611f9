"""Dates as referral forms write them: day first (UK), ISO, or with the month in words.

One reading for routing (a child or an adult, for an area's conditions) and for the
statistics (the age band on the day of referral), so the two never disagree.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}


def parse_date(text: str) -> date | None:
    """A date written day first (UK forms) or ISO; None when it is not one."""
    text = text.strip().lower()
    parts = re.findall(r"[0-9]+|[a-z]+", text)
    try:
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
            year, month, day = (int(p) for p in parts)
        elif len(parts) == 3 and parts[1] in _MONTHS:
            day, month, year = int(parts[0]), _MONTHS[parts[1]], int(parts[2])
        elif len(parts) == 4 and parts[2] in _MONTHS:  # 1st February 2001
            day, month, year = int(parts[0]), _MONTHS[parts[2]], int(parts[3])
        elif len(parts) == 3 and all(p.isdigit() for p in parts):
            day, month, year = (int(p) for p in parts)
        else:
            return None
        if year < 100:  # 01/02/09: the most recent such year not in the future
            year += 2000 if 2000 + year <= datetime.now(UTC).year else 1900
        return date(year, month, day)
    except (ValueError, KeyError):
        return None

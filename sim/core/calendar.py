"""Reporting periods: English financial years (1 April - 31 March) and their quarters.

Simulation time is in days since the contract start; periods are cut at calendar boundaries and clipped to the
reported window [0, end). A contract that starts mid-year has a short first period.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

FREQUENCIES = ("quarter", "year")
DAYS_PER_WEEK = 7.0
DAYS_PER_YEAR = 365.25  # the mean Julian year: every conversion between days and years uses it


def financial_year(d: dt.date) -> int:
    """The calendar year in which the financial year containing ``d`` starts."""
    return d.year if d.month >= 4 else d.year - 1


def fy_label(start_year: int) -> str:
    return f"{start_year}-{(start_year + 1) % 100:02d}"


def periods(contract_start: dt.date, end_day: float, freq: str) -> pd.DataFrame:
    """One row per reporting period: ``period`` label, ``start`` and ``end`` (days since contract start)."""
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
    end_date = contract_start + dt.timedelta(days=end_day)
    rows = []
    fy = financial_year(contract_start)
    while True:
        fy_start = dt.date(fy, 4, 1)
        if fy_start >= end_date:
            break
        if freq == "year":
            bounds = [(fy_label(fy), fy_start, dt.date(fy + 1, 4, 1))]
        else:
            starts = [dt.date(fy, 4, 1), dt.date(fy, 7, 1), dt.date(fy, 10, 1), dt.date(fy + 1, 1, 1),
                      dt.date(fy + 1, 4, 1)]
            bounds = [(f"{fy_label(fy)} Q{i + 1}", starts[i], starts[i + 1]) for i in range(4)]
        for label, a, b in bounds:
            a, b = max(a, contract_start), min(b, end_date)
            if a < b:
                rows.append((label, float((a - contract_start).days), float((b - contract_start).days)))
        fy += 1
    return pd.DataFrame(rows, columns=["period", "start", "end"])

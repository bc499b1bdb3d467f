"""The contract features responsible for what a design invites (§3.10 of provider-behaviour.md): each feature
of a contract that raises or lowers a mechanism's pressure, with the figure that shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import REVIEW_MEASURES
from sim.config.contract import Contract
from sim.provider.model import ProviderModel

if TYPE_CHECKING:
    pass



# --- the contract features responsible (§3.10) ---------------------------------------------------------------------


def percent(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def contract_features(contract: Contract, provider: ProviderModel | None, tariff=None,
                      strengths: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """The features of ``contract`` that switch mechanisms on or damp them (provider-behaviour.md §3.10), with
    the design's setting and what was measured: ``feature``, ``setting``, ``raises``, ``damps``, ``measured``
    (the related mechanism strengths in the base mode, if ``strengths`` has one, else stress)."""
    terms = contract.terms
    s = {} if strengths is None else (strengths.get("base") if "base" in strengths else strengths.get("stress", {}))
    s = dict(s) if s is not None else {}

    def measured(*names: str) -> str:
        if not s:
            return ""
        parts = []
        for n in names:
            v = float(s.get(n, math.nan))
            parts.append(f"{n.replace('_', ' ')} {v:.0f}" if n.endswith("_days") else
                         f"{n.replace('_', ' ')} {percent(v)}")
        return "; ".join(parts)

    shares = [contract.share(y) for y in range(1, contract.years + 1)]
    at_risk = provider.share_at_risk if provider is not None else np.zeros(contract.years)
    measures = {o.measure for o in contract.outcomes.values()}
    rows = []

    def row(feature, setting, raises, damps, evidence):
        rows.append({"feature": feature, "setting": setting, "raises": raises, "damps": damps,
                     "measured": evidence})

    row("PbR share", f"{min(shares):.0%}-{max(shares):.0%} of the annual value by contract year; "
        f"{float(np.mean(at_risk)):.0%} at the margin after caps and floors (mean)",
        "M1-M7 (every mechanism scales with the share at risk)" if max(shares) > 0 else "",
        "" if max(shares) > 0 else "every mechanism (nothing at risk)",
        f"gaming pressure {s.get('mean_pressure', math.nan):.3f}" if s else "")
    if tariff is not None:
        w = contract.band_weights
        ratio = w.get("critical", 0) / w["low"] if w.get("low") else math.inf
        flat = np.isfinite(tariff.steepness) and tariff.steepness < 1
        row("Band weights", f"Critical/Low = {ratio:.2f}; {tariff.steepness:.2f} of the margin-neutral steepness; "
            f"{tariff.distance:.0%} from the margin-neutral weights; invites {tariff.invites}",
            "M1, M2, M5 (flatter than neutral)" if flat else "M6 band drift (steeper than neutral)",
            "M6" if flat else "M1, M2", measured("deflected_share", "parked_share", "band_drift_share"))
    row("Who assesses", f"{terms.assessment} LASARS" if terms.assessment != "provider" else "the provider",
        "" if terms.assessment == "independent" else "M6 band drift; M1 discretion",
        "M6 band drift (independence 1); M1 (little discretion)" if terms.assessment == "independent" else "",
        measured("band_drift_share"))
    row("Who controls intake", "the provider" if terms.intake == "provider" else "the assessor allocates starts",
        "M1 cream-skimming" if terms.intake == "provider" else "", "" if terms.intake == "provider" else "M1",
        measured("deflected_share"))
    sustained = [o for o in contract.outcomes.values() if o.measure == "sustained_recovery"]
    row("Sustained outcome (no re-presentation window)",
        ", ".join(f"{o.window_days:g}-day window, {o.lag_days:g}-day lag" for o in sustained) or "not priced",
        "M4 holding; M7 (a long lag)" if sustained else "", "" if sustained else "M4 holding",
        measured("held_share", "mean_hold_days"))
    completion = "planned_exit" in measures
    row("Completion paid", "priced" + (" with a sustained test" if sustained else " without a sustained test")
        if completion else "not priced",
        "M4 fast-tracking" if completion and not sustained else ("M4 either way: the balance of 1.3 and 1.4 sets "
                                                               "the sign" if completion else ""), "",
        measured("fast_tracked_share", "mean_fast_track_days"))
    reviews = sorted(measures & set(REVIEW_MEASURES))
    row("In-treatment outcomes at two TOP reviews", ", ".join(reviews) or "not priced",
        "M3 effort shift and review timing; M4 (holding earns)" if reviews else "",
        "" if reviews else "M3", measured("misrecorded_share"))
    if provider is not None and len(provider.schedule):
        sch = provider.schedule[provider.schedule["outcome"] != "offending"]
        money = sch["gross"] * sch["volume"].fillna(0.0)
        delay = float(((sch["delay_days"] + sch["evidence_days"]) * money).sum() / money.sum()) if money.sum() > 0 \
            else math.nan
        row("Payment lags", f"outcome money arrives {delay:.0f} days after the deciding event, money-weighted "
            f"(core {contract.core_payment.replace('_', ' ')})" if np.isfinite(delay) else "no outcome money",
            "M2, M3 (quick wins), M7" if np.isfinite(delay) and delay > 90 else "",
            "M7 (core in advance)" if contract.core_payment.endswith("in_advance") else "",
            measured("parked_share", "capacity_cut"))
    caps = [f"PbR cap {contract.pbr_cap:g} x pot" if contract.pbr_cap is not None else "",
            f"term cap £{contract.term_cap:,.0f}" if contract.term_cap is not None else "",
            ", ".join(f"{n} £{o.cap_per_year:,.0f} a year" for n, o in contract.outcomes.items()
                      if o.cap_per_year is not None)]
    binding = float(np.mean(at_risk)) < 0.95 * float(np.mean(shares)) if max(shares) > 0 else False
    row("Caps and collars", "; ".join(c for c in caps if c) or "none",
        "", "every mechanism at the margin (the share at risk falls where a cap binds)" if binding else "",
        f"share at risk {float(np.mean(at_risk)):.0%} of a PbR share of {float(np.mean(shares)):.0%}")
    floor = terms.contact_floor_per_month
    row("Contact floor", f"{floor:g} contacts a month" if floor is not None else "none",
        "M7 (cost)" if floor is not None else "M2 (parking unbounded)", "M2 parking" if floor is not None else "",
        measured("parked_share"))
    row("Audit with clawback", f"{terms.audit_share:.0%} of assessments and reviews re-checked",
        "" if terms.audit_share > 0 else "M3 misrecording, M6 (unchecked)",
        "M3 misrecording, M6 band drift" if terms.audit_share > 0 else "",
        measured("misrecorded_share", "band_drift_share"))
    row("Verified TOP reviews", "yes" if terms.verified_reviews else "self-reported",
        "" if terms.verified_reviews else "M3 review timing and misrecording",
        "M3 review timing and misrecording" if terms.verified_reviews else "", measured("misrecorded_share"))
    engagement = [n for n, o in contract.outcomes.items() if o.measure == "engagement"]
    row("Engagement or presentation fee", ", ".join(engagement) or "none",
        "" if engagement else "M1, M5 (no shadow price on enrolment)", "M1, M5, M7" if engagement else "",
        measured("deflected_share"))
    row("Income floor", f"{contract.income_floor:.0%} of the annual value" if contract.income_floor is not None
        else "none", "" if contract.income_floor is not None else "M7", "M7" if contract.income_floor is not None
        else "", measured("capacity_cut"))
    row("Wait-time standard", f"{terms.wait_standard_days:g} days" if terms.wait_standard_days else "none",
        "" if terms.wait_standard_days else "M5 (throttling unbounded)", "M5" if terms.wait_standard_days else "",
        f"reserved share {percent(s.get('reserved_share', math.nan))}" if s else "")
    return pd.DataFrame(rows)

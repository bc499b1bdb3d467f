"""What a contract-blind History says about each band: outcomes and costs per client
(:func:`band_profile`), and the band weights that make every band equally profitable
(:func:`margin_neutral_weights`), with the check of a tariff against them (:class:`TariffCheck`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import MONTH_DAYS, STRUCTURED_BANDS, BehaviourSpec, ProviderProfile
from sim.config.contract import Contract
from sim.money.settlement import once_per  # the settlement's own rule, so the provider's view agrees with it
from sim.provider.pricing import discount_factor, price_schedule

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.config.scenario import Scenario
    from sim.engine.history import History



# --- 6. from a contract-blind History: outcomes and costs by band, the margin-neutral tariff --------------------------


@dataclass(frozen=True)
class BandProfile:
    """Per structured band, from the treatment episodes that started in the reference period of a contract-blind
    History: ``starters``, ``months`` (mean months on the caseload), ``cost`` (mean delivery cost per starter,
    pounds: variable items of :func:`sim.analysis.costs.delivery_costs` plus staff and overheads per caseload-day), and
    ``achievements`` (band x outcome: paid achievements per starter, under each outcome's once-per rule)."""

    starters: pd.Series
    months: pd.Series
    cost: pd.Series
    achievements: pd.DataFrame


def band_profile(contract: Contract, history: History, scenario: Scenario, follow_up_days: float = 365.0
                 ) -> BandProfile:
    """Outcomes and delivery cost per treatment starter by band (see :class:`BandProfile`). The reference
    episodes start in [0, end - follow_up_days): inside the costed horizon and followed at least that long."""
    from sim.analysis import costs as costs_module
    from sim.analysis.outcomes import achievements
    from sim.core.vocabulary import TREATMENT_STATES

    ep = history.episodes
    ref = ep[(ep["treatment_start"] >= 0) & (ep["treatment_start"] < history.end - follow_up_days)
             & ep["band"].isin(STRUCTURED_BANDS)]
    if ref.empty:
        raise ValueError(f"no treatment starts in [0, {history.end - follow_up_days:g}): the History needs more "
                         f"than follow_up_days = {follow_up_days:g} days after the contract start")
    ref = ref[["client_id", "episode"]].assign(band=ref["band"].astype(object).to_numpy())
    key = pd.MultiIndex.from_frame(ref[["client_id", "episode"]])
    starters = ref["band"].value_counts().reindex(list(STRUCTURED_BANDS), fill_value=0).astype(float)

    per = pd.DataFrame(0.0, index=list(STRUCTURED_BANDS), columns=list(contract.outcomes))
    for name, o in contract.outcomes.items():
        found = achievements(history, o.measure, o.window_days).sort_values(["time", "client_id"], kind="stable")
        paid = once_per(found[found["time"] >= 0], o)
        inside = pd.MultiIndex.from_frame(paid[["client_id", "episode"]]).isin(key)
        counts = paid.loc[inside, "band"].astype(object).value_counts()
        per[name] = counts.reindex(per.index, fill_value=0).to_numpy() / starters.where(starters > 0).to_numpy()
    per = per.fillna(0.0)

    sp = history.spells
    on_caseload = sp[sp["state"].isin(TREATMENT_STATES)]
    mine = on_caseload[["client_id", "episode", "start", "end"]].merge(ref, on=["client_id", "episode"])
    days = (mine["end"].clip(upper=history.end) - mine["start"].clip(lower=0)).clip(lower=0)
    band_days = days.groupby(mine["band"]).sum().reindex(list(STRUCTURED_BANDS), fill_value=0.0)
    all_days = (on_caseload["end"].clip(upper=history.end) - on_caseload["start"].clip(lower=0)).clip(lower=0).sum()
    total = costs_module.delivery_costs(history, scenario, "year")
    fixed = total.loc[total["item"].isin(["staff", "overheads"]), "cost"].sum()
    per_day = fixed / all_days if all_days > 0 else 0.0
    cost = pd.Series(0.0, index=list(STRUCTURED_BANDS))
    for b in STRUCTURED_BANDS:
        keys = pd.MultiIndex.from_frame(ref.loc[ref["band"] == b, ["client_id", "episode"]])
        if not len(keys):
            continue
        sub = _restrict(history, keys)
        rows = costs_module.delivery_costs(sub, scenario, "year")
        variable = rows.loc[~rows["item"].isin(["staff", "overheads"]), "cost"].sum()
        cost[b] = (variable + per_day * band_days[b]) / starters[b]
    months = band_days / starters.where(starters > 0) / MONTH_DAYS
    return BandProfile(starters=starters, months=months.fillna(0.0), cost=cost, achievements=per)


def _restrict(history: History, keys: pd.MultiIndex) -> History:
    """The History of some episodes only (clients, their spells, events and reviews in those episodes)."""
    def keep(d: pd.DataFrame) -> pd.DataFrame:
        return d[pd.MultiIndex.from_frame(d[["client_id", "episode"]]).isin(keys)]

    clients = history.clients[history.clients["client_id"].isin(keys.get_level_values(0))]
    return dataclasses.replace(history, clients=clients, episodes=keep(history.episodes), spells=keep(history.spells),
                               events=keep(history.events), reviews=keep(history.reviews))


@dataclass(frozen=True)
class TariffCheck:
    """The margin-neutral tariff check (§3.2). ``table`` per structured band: ``starters`` (treatment starts in
    the reference period), ``unit_value`` (expected outcome payments per starter at weight 1, pounds, discounted), ``fee``
    (payments per starter under outcomes with their own band weights), ``cost`` (delivery cost per starter),
    ``design_weight``, ``neutral_weight``, ``design_margin`` and ``neutral_margin`` (pounds per starter: outcome
    payments less the at-risk share of cost). ``distance``: sum of starters x |w - w*| / sum of starters x w.
    ``margin_spread``: most minus least profitable band's margin under the design, in units of R-bar.
    ``steepness``: log(w_critical / w_low) / log(w*_critical / w*_low) (below 1 flatter than neutral: invites
    cream-skimming and parking; above 1 steeper: invites upcoding). ``feasible``: no neutral weight is negative
    (otherwise outcome weights alone cannot make bands equally profitable at this share at risk: a block or
    cost element for high-need bands is needed)."""

    table: pd.DataFrame
    distance: float
    margin_spread: float
    steepness: float
    feasible: bool
    invites: str


def margin_neutral_weights(contract: Contract, scenario: Scenario, history: History | None = None, *,
                           seed: int | None = None, follow_up_days: float = 365.0) -> TariffCheck:
    """Band weights under which no band is more profitable to take on than another, and how far the contract's
    weights are from them (§3.2).

    A starter of band b brings w_b x U_b + F_b in outcome payments (U_b: expected payments per starter at weight
    1 from the price schedule and the band's per-starter outcome rates in a contract-blind History; F_b from
    outcomes priced by their own band weights) and costs c_b (:mod:`sim.analysis.costs`), of which the share at risk s is
    not covered by the core. Neutral: w*_b x U_b + F_b - s x c_b equal across bands, with the design's expected
    outcome money. Averaged over the contract years (prices and shares change with the year). ``history``:
    a contract-blind History of the scenario; simulated (``seed``) when not given. Offending money, paid per
    cohort rather than per band, is left out. Neutral levels do not remove parking, which follows the return to
    effort, nor creaming within bands."""
    if history is None:
        from sim.engine.system import simulate

        blind = scenario
        if "behaviour" in type(scenario).model_fields:
            blind = scenario.with_changes({"behaviour.mode": "off"})
        history = simulate(blind, seed)
    schedule = price_schedule(contract, scenario, history)
    prof = band_profile(contract, history, scenario, follow_up_days)
    s = schedule[(schedule["outcome"] != "offending") & schedule["band"].isin(STRUCTURED_BANDS)].copy()
    evidence = discount_factor(s["evidence_days"], _profile(scenario).discount_per_month)
    s["per_weight"] = s["unit_price"] * s["multiplier"] * s["discount"] * (1 - s["clawback_risk"]) * evidence
    own = {name for name, o in contract.outcomes.items() if o.band_weights is not None}
    per_weight = s.groupby(["outcome", "band"])["per_weight"].mean().unstack("band")
    weight = s.groupby(["outcome", "band"])["weight"].first().unstack("band")
    bands = list(STRUCTURED_BANDS)
    unit_value = pd.Series(0.0, index=bands)
    fee = pd.Series(0.0, index=bands)
    for name in contract.outcomes:
        n = prof.achievements[name]
        if name in own:
            fee += per_weight.loc[name, bands] * weight.loc[name, bands] * n
        else:
            unit_value += per_weight.loc[name, bands] * n
    share = float(np.mean([contract.share(y) for y in range(1, contract.years + 1)]))
    N = prof.starters
    w = pd.Series({b: contract.band_weights.get(b, 0.0) for b in bands})
    budget = float((N * w * unit_value).sum())
    margin = w * unit_value + fee - share * prof.cost
    M = float((budget + (N * fee).sum() - share * (N * prof.cost).sum()) / N.sum())
    neutral = ((M - fee + share * prof.cost) / unit_value.where(unit_value > 0)).astype(float)
    table = pd.DataFrame({"starters": N, "unit_value": unit_value, "fee": fee, "cost": prof.cost,
                          "design_weight": w, "neutral_weight": neutral, "design_margin": margin,
                          "neutral_margin": M}).rename_axis("band")
    revenue = (budget + float((N * fee).sum())) / N.sum()
    feasible = bool(neutral.notna().all() and (neutral >= 0).all())
    distance = float((N * (w - neutral).abs()).sum() / (N * w).sum()) if (N * w).sum() > 0 else float("nan")
    spread = float((margin.max() - margin.min()) / revenue) if revenue > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = neutral["critical"] / neutral["low"]
        steep = float(np.log(w["critical"] / w["low"]) / np.log(ratio)) if (
            feasible and ratio > 0 and ratio != 1 and w["low"] > 0) else float("nan")
    gap = margin["critical"] - margin["low"]
    invites = ("cream-skimming and parking (Critical clients less profitable than Low)" if gap < 0 else
               "upcoding (Critical clients more profitable than Low)" if gap > 0 else "neither")
    return TariffCheck(table=table, distance=distance, margin_spread=spread, steepness=steep, feasible=feasible,
                       invites=invites)


def _profile(scenario: Scenario | None) -> ProviderProfile:
    spec = getattr(scenario, "behaviour", None)
    return spec.provider if isinstance(spec, BehaviourSpec) else ProviderProfile()

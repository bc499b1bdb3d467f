"""M7, the cash response: the provider's monthly reserve under its contract's cash flows, and what it does
when the reserve runs low (cut recovery-worker capacity, freeze intake, hand the contract back).

Pure: a monthly cash table in (:func:`cash_inputs` from a settlement), a cash path out (:func:`cash_response`),
and the capacity cuts as dated scenario changes (:func:`capacity_changes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import Behaviour

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.config.scenario import Scenario



CASH_COLUMNS = ["start", "income", "cost", "reserve", "stress", "capacity_multiplier", "intake_frozen",
                "handed_back", "overdraft_cost", "discount_per_month"]


def cash_response(monthly: pd.DataFrame, behaviour: Behaviour, active: bool = True,
                  arranged: float = 0.0) -> pd.DataFrame:
    """M7: the provider's reserve month by month and its response (§3.9), from a run's monthly cash (``start``
    (day), ``income``, ``cost`` and optionally ``staff`` pounds, as :func:`sim.money.settlement.monthly_cash` and
    :func:`sim.analysis.costs.delivery_costs` give them). Pure: the engine applies the result on a re-run (capacity as
    dated changes, see :func:`capacity_changes`; intake freezes; the stress feeds G and the discount rate).

    The reserve opens at ``opening_reserve_months`` of operating cost (the mean monthly cost of the first year)
    plus ``arranged``, the working capital the provider arranged when it bid (pounds: the shortfall the design's
    payment lags make at the expected performance, :func:`arranged_working_capital`), and moves by income less
    cost less overdraft interest. So a design's lags alone do not stress the provider; a loss, or performing below
    what it bid on, does. Stress = max(0, (R_min - R) / R_min). At each
    quarter's end the capacity is cut by c_cut while R < R_min and restored by the recovery rate once R > R_min;
    staff cost falls with it in the same pass. Intake is frozen while R is below ``freeze_below_months``. After
    ``hand_back_after_months`` consecutive months opening with R < 0 the contract is handed back: the commissioner's
    interim block provision follows (no stress, full capacity, no freeze). With ``active`` False (behaviour off,
    the mechanism disabled, or nothing at risk) the reserve is reported and nothing responds."""
    cs, p = behaviour.cash_stress, behaviour.profile
    active = bool(active and behaviour.active and cs.enabled)
    cost = monthly["cost"].to_numpy(float)
    income = monthly["income"].to_numpy(float)
    staff = monthly["staff"].to_numpy(float) if "staff" in monthly else np.zeros(len(monthly))
    operating = float(np.mean(cost[:12])) if len(cost) else 0.0
    reserve = p.opening_reserve_months * operating + float(arranged)
    r_min = cs.stress_trigger_months * operating
    freeze = cs.freeze_below_months * operating
    mult, negative, handed = 1.0, 0, False
    rows = []
    for m in range(len(monthly)):
        negative = negative + 1 if reserve < 0 else 0  # months opening with a negative reserve, in a row
        stress = max(0.0, (r_min - reserve) / r_min) if (r_min > 0 and active and not handed) else 0.0
        frozen = bool(active and not handed and reserve < freeze)
        spent = cost[m] - staff[m] * (1.0 - mult)
        overdraft = cs.overdraft_per_month * max(-reserve, 0.0)
        rows.append((monthly["start"].iloc[m], income[m], spent, reserve, stress, mult, frozen, handed, overdraft,
                     p.discount_per_month + p.stress_discount_per_month * stress))
        reserve += income[m] - spent - overdraft
        if not active or handed:
            continue
        if negative >= cs.hand_back_after_months:
            handed, mult = True, 1.0
        elif m % 3 == 2:  # a quarter's end
            if reserve < r_min:
                mult *= 1.0 - cs.cut_per_quarter
            elif reserve > r_min:
                mult = min(1.0, mult + cs.recovery_per_quarter)
    return pd.DataFrame(rows, columns=CASH_COLUMNS)


def timing_shortfall(income, cost) -> float:
    """The working capital a stream of payments needs for its timing alone (pounds): the deepest the cumulative
    cash goes once cost is scaled so that the whole stream breaks even (income / cost over it). A design that
    pays in arrears needs it; a design that pays too little in total is a loss, which no working capital funds."""
    income, cost = np.asarray(income, dtype=float), np.asarray(cost, dtype=float)
    total = cost.sum()
    if total <= 0:
        return 0.0
    gap = np.cumsum(income - cost * (income.sum() / total))
    return float(max(0.0, -gap.min())) if len(gap) else 0.0


def arranged_working_capital(settlement) -> float:
    """The working capital a provider arranges when it bids (pounds): the :func:`timing_shortfall` of the monthly
    cash of ``settlement``, a contract-blind run at the performance it expects (its pilot run, see
    :func:`sim.experiments.providers.pilot_history`), payments after the term included. Nil under block payment
    in advance."""
    from sim.money.settlement import monthly_cash

    cash = monthly_cash(settlement)
    return timing_shortfall(cash["income"], cash["cost"])


def cash_inputs(settlement) -> pd.DataFrame:
    """The monthly inputs of :func:`cash_response` from a :class:`sim.money.settlement.Settlement`: ``start``,
    ``income`` and ``cost`` of :func:`sim.money.settlement.monthly_cash`, and ``staff``, the recovery workers' pay
    in each month (what a capacity cut saves)."""
    from sim.analysis.costs import delivery_costs
    from sim.money.settlement import monthly_cash

    cash = monthly_cash(settlement)
    rows = delivery_costs(settlement.history, settlement.scenario, "month")
    staff = rows[rows["item"] == "staff"].set_index("start")["cost"]
    out = cash[["start", "income", "cost"]].copy()
    out["staff"] = staff.reindex(out["start"].to_numpy(), fill_value=0.0).to_numpy()
    return out


def capacity_changes(response: pd.DataFrame, scenario: Scenario) -> list[dict]:
    """M7: the capacity path of a :func:`cash_response` as ``[[schedule]]`` changes (``date``, ``note``, ``set``
    of ``capacity.recovery_workers``), each the workers in force that day times the multiplier, for
    ``scenario.with_changes({"schedule": [*existing, *changes]})``. Staff costs follow the workers in post."""
    import datetime as dt

    out, last = [], 1.0
    start = scenario.horizon.contract_start
    epochs = scenario.epochs()
    for r in response.itertuples():
        if r.capacity_multiplier == last:
            continue
        day = float(r.start)
        in_force = [s for t, s in epochs if t <= day][-1]
        out.append({"date": start + dt.timedelta(days=int(day)),
                    "note": f"provider cash stress: capacity x{r.capacity_multiplier:.3f}",
                    "set": {"capacity.recovery_workers": in_force.capacity.recovery_workers * r.capacity_multiplier}})
        last = r.capacity_multiplier
    return out

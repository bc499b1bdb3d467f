"""A run with the provider responding to its contract, M7 included: the cash feedback as a fixed point outside
SimPy (:func:`simulate_with_provider`): run with the provider model, settle, turn the cash into capacity cuts,
intake freezes and cash stress, and run again until the capacity path stops changing.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.contract import Contract
from sim.provider.cash import capacity_changes, cash_inputs, cash_response
from sim.provider.model import ProviderModel
from sim.provider.outputs import behaviour_outputs

if TYPE_CHECKING:
    from sim.config.scenario import Scenario
    from sim.engine.history import History
    from sim.money.settlement import Settlement



# --- 2. M7: the cash feedback, a fixed point outside SimPy ------------------------------------------------------


@dataclass
class ProviderRun:
    """One run with the provider responding to its contract (:func:`simulate_with_provider`)."""

    history: History
    settlement: Settlement
    cash: pd.DataFrame                # the M7 cash path of the final run (sim.provider.cash.CASH_COLUMNS)
    scenario: Scenario                # as run: the input plus the provider's capacity changes in its schedule
    provider: ProviderModel | None    # as run (with the cash path it read); None when behaviour is off
    capacity_path: list[dict] = field(default_factory=list)  # the [[schedule]] entries the cash response added
    iterations: int = 1               # runs made
    converged: bool = True            # the last run's cash implied the capacity path it ran with

    def outputs(self, blind: Settlement | None = None) -> pd.DataFrame:
        """:func:`behaviour_outputs` of this run (``blind``: the behaviour-off settlement, to pair outcomes)."""
        return behaviour_outputs(self.history, self.settlement, self.scenario, blind=blind, cash=self.cash)


def _with_capacity(scenario: Scenario, changes: list[dict]) -> Scenario:
    """The scenario with the cash response's capacity changes added to its dated changes."""
    if not changes:
        return scenario
    existing = copy.deepcopy(scenario.raw().get("schedule", []))
    return scenario.with_changes({"schedule": [*existing, *copy.deepcopy(changes)]})


def _at_full_capacity(monthly: pd.DataFrame, path: pd.DataFrame | None) -> pd.DataFrame:
    """Cash inputs as if capacity had not been cut: the staff pay of a run that ran with the multiplier path
    ``path`` (``start``, ``capacity_multiplier``), scaled back up, so that the cash response cuts from the full
    establishment (otherwise each pass would cut what the last pass had already cut)."""
    if path is None or path.empty:
        return monthly
    mult = monthly["start"].map(path.set_index("start")["capacity_multiplier"]).fillna(1.0).to_numpy(float)
    out = monthly.copy()
    full = out["staff"].to_numpy(float) / np.where(mult > 0, mult, 1.0)
    out["cost"] = out["cost"] - out["staff"] + full
    out["staff"] = full
    return out


def _path_key(changes: list[dict], cash: pd.DataFrame) -> tuple:
    """What must stop changing for the fixed point: the capacity path, the frozen months, the hand-back."""
    frozen = tuple(cash.loc[cash["intake_frozen"].astype(bool), "start"].round(6))
    handed = cash.loc[cash["handed_back"].astype(bool), "start"]
    return (tuple((str(c["date"]), round(float(v), 9)) for c in changes for v in c["set"].values()), frozen,
            float(handed.iloc[0]) if len(handed) else None)


def simulate_with_provider(scenario: Scenario, contract: Contract, seed=None, iterations: int = 3, *,
                           pilot_seed: int | None = None, progress: Callable | None = None) -> ProviderRun:
    """A run with the provider responding to ``contract``, M7 included, as a fixed point outside SimPy.

    With the scenario's behaviour off this is the contract-blind run, settled (the cash path is reported, nothing
    responds). Otherwise the provider model is :func:`sim.experiments.providers.provider_model` (beliefs from one
    contract-blind pilot run on ``pilot_seed``, default the scenario's seed, as :func:`sim.experiments.core.run_one`
    uses); then: run with it -> settle -> monthly cash (:func:`sim.provider.cash.cash_inputs`, at full capacity) ->
    :func:`sim.provider.cash.cash_response` (the reserve opening with the working capital the provider arranged
    for the design's payment lags at its pilot run's performance, on top of its own reserve) -> capacity cuts as dated changes of ``capacity.recovery_workers``
    (:func:`sim.provider.cash.capacity_changes`) and the cash path (stress, intake freezes, hand-back) in the
    provider model -> run again, until the capacity path, the frozen months and the hand-back month stop
    changing or ``iterations`` runs have been made (``converged`` says which). Every run uses ``seed``, so every
    run sees the same referrals. Without cash stress (the mechanism disabled, nothing at risk, or a reserve that
    never falls below its trigger) the first run is the answer, and equals ``run_one``'s History. Cash stress
    reaches the decisions through the gaming pressure and the discount rate; after a hand-back the provider
    stops gaming (the commissioner's interim block provision is not settled separately)."""
    from sim.engine.system import simulate
    from sim.experiments.providers import arranged_capital, provider_model
    from sim.money.settlement import settle

    seed = scenario.seed if seed is None else seed
    behaviour = scenario.behaviour.resolve()
    model = provider_model(scenario, contract, pilot_seed) if behaviour.active else None
    if model is None:
        history = simulate(scenario, seed, progress=progress)
        settlement = settle(contract, history, scenario)
        cash = cash_response(cash_inputs(settlement), behaviour, active=False)
        return ProviderRun(history, settlement, cash, scenario, None)
    active = bool(behaviour.cash_stress.enabled and float(np.max(model.share_at_risk, initial=0.0)) > 0)
    arranged = arranged_capital(scenario, contract, pilot_seed) if active else 0.0
    run_scenario, changes, provider, key, path = scenario, [], model, None, None
    for k in range(1, max(int(iterations), 1) + 1):
        history = simulate(run_scenario, seed, progress=progress, provider=provider)
        settlement = settle(contract, history, run_scenario)
        cash = cash_response(_at_full_capacity(cash_inputs(settlement), path), behaviour, active=active,
                             arranged=arranged)
        new_changes = capacity_changes(cash, scenario)
        new_key = _path_key(new_changes, cash)
        quiet = k == 1 and not new_changes and not cash["intake_frozen"].any() and not cash["handed_back"].any()
        if not active or new_key == key or quiet:
            return ProviderRun(history, settlement, cash, run_scenario, provider, changes, k, True)
        if k == iterations:
            return ProviderRun(history, settlement, cash, run_scenario, provider, changes, k, False)
        changes, key = new_changes, new_key
        path = cash[["start", "capacity_multiplier"]]
        run_scenario = _with_capacity(scenario, changes)
        provider = dataclasses.replace(model, cash=cash)
    raise AssertionError("unreachable")

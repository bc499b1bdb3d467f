"""Which provider model a run uses: built once per scenario, contract and pilot seed, from a contract-blind
pilot run that is simulated here and kept in memory (a sweep changes the scenario or contract at every point,
so only the latest few are kept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from sim.config.contract import Contract
from sim.core.errors import UserError
from sim.provider.model import ProviderModel

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.config.scenario import Scenario
    from sim.engine.history import History



_PILOTS: dict[tuple[str, int], History] = {}
_MODELS: dict[tuple[str, str, int], ProviderModel] = {}
_ARRANGED: dict[tuple[str, str, int], float] = {}
_KEEP = 4  # a sweep changes the scenario or contract at every point: keep only the latest few


def _remember(cache: dict, key, make):
    found = cache.get(key)
    if found is None:
        found = cache[key] = make()
        while len(cache) > _KEEP:
            cache.pop(next(iter(cache)))
    return found


def pilot_history(scenario: Scenario, seed: int | None = None) -> History:
    """The provider's contract-blind pilot run of ``scenario`` (behaviour off) on ``seed`` (default: the scenario's
    own), simulated once per process and kept: what the provider expects, the same for every replication."""
    from sim.engine.system import simulate
    from sim.experiments.store import digest

    blind = scenario.with_changes({"behaviour.mode": "off"})
    seed = scenario.seed if seed is None else int(seed)
    return _remember(_PILOTS, (digest(blind.raw()), seed), lambda: simulate(blind, seed))


def at_risk(contract: Contract) -> bool:
    """Whether any contract year puts a share of the provider's income on outcomes."""
    return any(contract.share(y) > 0 for y in range(1, contract.years + 1))


def provider_model(scenario: Scenario, contract: Contract | None, seed: int | None = None,
                   cash: pd.DataFrame | None = None) -> ProviderModel | None:
    """The provider's view of ``contract`` for runs of ``scenario``, or None when its behaviour mode is off, there
    is no contract, or the contract puts nothing at risk in any year (a block contract: at zero pressure every
    mechanism is neutral and the cash response idle, so the run is the contract-blind run, table for table, with
    no pilot run to make and no year's follow-up needed). Beliefs are expectations, the same for every
    replication: they come from one contract-blind pilot run of the scenario (behaviour off) on ``seed``
    (default: the scenario's own). The pilot run and the model (without a cash path) are kept in memory for
    further calls in this process, so replications of one design build them once."""
    if contract is None or scenario.behaviour.mode == "off" or not at_risk(contract):
        return None
    from sim.experiments.store import digest

    if scenario.horizon.years <= 1.0 and scenario.horizon.end is None:
        raise UserError(f"scenario {scenario.name}: a provider responding to its contract (behaviour.mode = "
                        f"{scenario.behaviour.mode!r}) learns what a client is worth from a year's follow-up after "
                        f"the contract start, so horizon.years must be above 1, got {scenario.horizon.years:g} "
                        f"(or run it contract-blind: --provider off)")
    pilot = pilot_history(scenario, seed)
    seed = scenario.seed if seed is None else int(seed)

    def build() -> ProviderModel:
        return ProviderModel.build(scenario, contract, pilot, scenario.behaviour.resolve(), cash=cash)

    if cash is not None:
        return build()
    return _remember(_MODELS, (digest(scenario.raw()), digest(contract.raw()), seed), build)


def arranged_capital(scenario: Scenario, contract: Contract, seed: int | None = None) -> float:
    """The working capital the provider arranged for ``contract`` when it bid (pounds): the timing shortfall
    (:func:`sim.provider.cash.arranged_working_capital`) of its contract-blind pilot run under the contract's
    payment lags; computed once per scenario, contract and pilot seed in this process."""
    from sim.experiments.store import digest
    from sim.money.settlement import settle
    from sim.provider.cash import arranged_working_capital

    seed = scenario.seed if seed is None else int(seed)
    blind = scenario.with_changes({"behaviour.mode": "off"})
    return _remember(_ARRANGED, (digest(scenario.raw()), digest(contract.raw()), seed),
                     lambda: arranged_working_capital(settle(contract, pilot_history(scenario, seed), blind)))

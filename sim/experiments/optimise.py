"""The search for the best contract design: ``pbrsim optimise SPEC``.

A spec (``scenarios/optimise/*.toml``) names a scenario and the contract to start from, the contract's numbers to
search (``[[parameters]]``: a ``contract.`` key path, with ``low`` and ``high`` or ``values``; list elements by
index, ``contract.pbr_share.by_year.0``), an ``objective``, ``[constraints]``, how many ``trials`` and the
``replications`` each is judged on. Every candidate is judged on the same replications (common random numbers:
replication r uses the same seed for every candidate), with the provider responding as ``provider`` says
(``calibrated`` by default: fitted to the national pilot evaluation, so a design that invites gaming pays for it
in outcomes), through :func:`sim.experiments.compare.compare`, on any executor.

Objectives (maximised), from the term totals over the observed contract years, means over replications:

``sustained_recoveries``     sustained recoveries (planned exits not followed by a referral within 6 months)
``recoveries_per_million``   sustained recoveries per £1m of commissioner spend
``net_benefit``              ``wtp`` x sustained recoveries - spend (pounds)

Constraints: ``max_annual_spend`` (mean spend a contract year, pounds), ``max_probability_of_loss`` (the share of
replications in which the provider loses money over the term), ``max_working_capital`` (mean working capital the
provider needs, pounds). A candidate that breaks one is infeasible, whatever its objective.

The optimiser is Optuna's TPE sampler (Akiba et al. 2019), chosen over scipy and scikit-optimize because it takes
mixed parameters (ranges, whole numbers, lists of values), handles constraints in its sampler (infeasible trials
guide it away, not just a penalty), suits a noisy and expensive objective with few evaluations, and has an
ask-and-tell interface: each batch of ``batch`` candidates is asked for, judged together (in parallel on the
executor), and told back in trial order, so the search is the same on every executor and worker count. Every
judged candidate is kept in a result store (``<out>/runs``): a rerun of the same spec re-asks the same candidates
(the sampler is seeded and told the same values) and recomputes nothing already judged. At the end the best
``re_evaluate.best`` feasible candidates are judged again on ``re_evaluate.replications`` fresh replications (a
seed of their own), and the winner is the best of those that stay feasible: not a lucky draw of the search's
replications.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr, field_validator

from sim.config.base import ConfigError, Section, read_with_extends, source_of, validated
from sim.config.behaviour import MODES
from sim.config.contract import Contract, ContractError, load_contract
from sim.config.scenario import Scenario, ScenarioError, load_scenario
from sim.core.errors import unsettled_reported
from sim.experiments.compare import compare
from sim.experiments.store import ResultStore
from sim.experiments.sweep import Parameter, flatten_changes

OBJECTIVES = {"sustained_recoveries": "sustained recoveries over the term",
              "recoveries_per_million": "sustained recoveries per £1m of commissioner spend",
              "net_benefit": "willingness to pay x sustained recoveries - spend (pounds over the term)"}
RE_EVALUATION_KEY = 0x52455641  # "REVA": the spawn key of the fresh seed the finalists are judged on
RE_EVALUATION_POINT = 1_000_000  # store points of the finalists' re-evaluation: this + their rank
MAX_TRIALS = 5000


class OptimiseError(ConfigError):
    """An optimisation spec that cannot be run, with every problem found (file, key path, value, message)."""

    what = "optimisation spec"


class Constraints(Section):
    max_annual_spend: float | None = Field(None, gt=0, le=1e9, description="mean commissioner spend a contract "
                                                                          "year, at most (pounds)")
    max_probability_of_loss: float | None = Field(None, ge=0, le=1, description="share of replications in which "
                                                  "the provider loses money over the term, at most")
    max_working_capital: float | None = Field(None, ge=0, le=1e9, description="mean working capital the provider "
                                                                             "needs, at most (pounds)")


class ReEvaluate(Section):
    best: int = Field(3, ge=1, le=50, description="how many of the best feasible candidates are judged again")
    replications: int = Field(20, ge=2, le=10_000, description="fresh replications each finalist is judged on")


class OptimiseSpec(Section):
    """What to search, for what, under which limits."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", description="a plain name (the output "
                                                                                 "folder's)")
    description: str = ""
    scenario: str = Field(description="the scenario file, relative to this file")
    contract: str = Field(description="the contract the search starts from, relative to this file")
    provider: Literal[MODES] = Field("calibrated", description="the provider's behaviour while each candidate is "
                                                               "judged (calibrated: fitted to the pilot evaluation)")
    changes: dict[str, Any] = Field(default_factory=dict, description="values at dotted key paths of the scenario "
                                                                      "(e.g. a shorter horizon), fixed")
    parameters: list[Parameter] = Field(min_length=1, max_length=30)
    objective: Literal[tuple(OBJECTIVES)] = "net_benefit"
    wtp: float | None = Field(None, ge=0, le=1e9, description="willingness to pay per sustained recovery (pounds; "
                                                              "net_benefit only)")
    constraints: Constraints = Field(default_factory=Constraints)
    trials: int = Field(40, ge=1, le=MAX_TRIALS, description="candidates judged in the search")
    batch: int = Field(4, ge=1, le=64, description="candidates asked for and judged together")
    replications: int = Field(8, ge=1, le=10_000, description="replications each candidate is judged on")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds the sampler and the replications")
    re_evaluate: ReEvaluate = Field(default_factory=ReEvaluate)

    _source: str = PrivateAttr(default="<optimise>")
    _provenance: dict[tuple, str] = PrivateAttr(default_factory=dict)
    _base: tuple[Scenario, Contract] | None = PrivateAttr(default=None)

    @field_validator("changes", mode="before")
    @classmethod
    def _flatten(cls, changes: Any) -> Any:
        return flatten_changes(changes) if isinstance(changes, dict) else changes

    def base(self) -> tuple[Scenario, Contract]:
        """The scenario (with ``changes`` and the provider's mode) and contract the search starts from."""
        if self._base is None:
            check_optimise(self)
        return self._base

    def file(self, key: str) -> Path:
        named_in = Path(source_of((key,), self._provenance, self._source))
        name = getattr(self, key)
        return named_in.parent / name if named_in.suffix == ".toml" else Path(name)


def load_optimise(path: str | Path) -> OptimiseSpec:
    """Read and validate an optimisation spec, its scenario and contract, and every parameter at its ends."""
    path = Path(path)
    raw, provenance = read_with_extends(path, OptimiseError)
    spec = validated(raw, OptimiseSpec, OptimiseError, str(path), provenance)
    spec._source, spec._provenance = str(path), provenance
    check_optimise(spec)
    return spec


def optimise_from_dict(raw: dict[str, Any], source: str = "<optimise>") -> OptimiseSpec:
    """A spec from a dictionary (its files relative to the working directory), checked as a file is."""
    spec = validated(raw, OptimiseSpec, OptimiseError, source, {})
    spec._source = source
    check_optimise(spec)
    return spec


def check_optimise(spec: OptimiseSpec) -> None:
    """Everything that would stop the search, before it starts: the files, the changes, the objective's
    willingness to pay, and each parameter (a ``contract.`` path holding a number) at its low and high value."""
    source = spec._source
    found: list[tuple[str, str, Any, str]] = []
    try:
        scenario = load_scenario(spec.file("scenario"))
        scenario = scenario.with_changes({**spec.changes, "behaviour.mode": spec.provider})
    except (ScenarioError, FileNotFoundError, OSError) as e:
        raise OptimiseError([(source, "scenario", spec.scenario, str(e).splitlines()[0])]) from None
    except ConfigError as e:
        raise OptimiseError([(source, "changes", spec.changes, e.problems[0][3])]) from None
    try:
        contract = load_contract(spec.file("contract"))
    except (ContractError, FileNotFoundError, OSError) as e:
        raise OptimiseError([(source, "contract", spec.contract, str(e).splitlines()[0])]) from None
    if spec.objective == "net_benefit" and spec.wtp is None:
        found.append((source, "wtp", None, "the net_benefit objective needs a willingness to pay per sustained "
                                           "recovery (pounds)"))
    seen = set()
    for i, p in enumerate(spec.parameters):
        key = f"parameters[{i}].path"
        if not p.path.startswith("contract."):
            found.append((source, key, p.path, "optimise searches the contract: a key path starting 'contract.'"))
            continue
        if p.path in seen:
            found.append((source, key, p.path, "searched twice"))
        seen.add(p.path)
        if p.values is None and (p.low is None or p.high is None):
            found.append((source, f"parameters[{i}]", p.path, "give low and high, or values"))
            continue
        for value in (p.values if p.values is not None else (p.low, p.high)):
            try:
                contract.with_changes({p.path.removeprefix("contract."): _typed(p, value)})
            except KeyError:
                found.append((source, key, p.path, f"no such key in contract {contract.name}"))
                break
            except ConfigError as e:
                found.append((source, f"parameters[{i}]", value, f"{p.path} = {value!r}: {e.problems[0][3]}"))
                break
    if found:
        raise OptimiseError(found)
    from sim.money.settlement import check

    check(contract, scenario)
    spec._base = (scenario, contract)


def _typed(p: Parameter, value):
    return int(round(value)) if p.integer and isinstance(value, (int, float)) else value


# --- judging candidates -------------------------------------------------------------------------------------------


def judged(term: pd.DataFrame, spec: OptimiseSpec) -> dict[str, float]:
    """A candidate's term totals over replications (``term``: one row a replication, with ``years``, the contract
    years observed) as the objective and the constrained figures (means over replications; the chance of a loss
    as a share)."""
    years = int(term["years"].min())
    spend, recoveries = term["spend"].astype(float), term["sustained_recoveries"].astype(float)
    out = {"sustained_recoveries": float(recoveries.mean()), "spend": float(spend.mean()),
           "annual_spend": float(spend.mean()) / max(years, 1),
           "probability_of_loss": float((term["margin"] < 0).mean()),
           "working_capital": float(term["working_capital_needed"].mean()),
           "margin": float(term["margin"].mean())}
    out["recoveries_per_million"] = out["sustained_recoveries"] / (out["spend"] / 1e6) if out["spend"] > 0 else 0.0
    out["net_benefit"] = (spec.wtp or 0.0) * out["sustained_recoveries"] - out["spend"]
    out["objective"] = out[spec.objective]
    c = spec.constraints
    out["violation"] = max(0.0, *(
        [(out["annual_spend"] - c.max_annual_spend) / c.max_annual_spend] if c.max_annual_spend else []),
        *([out["probability_of_loss"] - c.max_probability_of_loss] if c.max_probability_of_loss is not None else []),
        *([(out["working_capital"] - c.max_working_capital) / max(c.max_working_capital, 1.0)]
          if c.max_working_capital is not None else []))
    out["feasible"] = out["violation"] <= 0
    return out


def _term_rows(term: pd.DataFrame) -> pd.DataFrame:
    """One candidate's term totals as store rows (period 'term', category 'contract')."""
    long = term.drop(columns=["contract"]).melt(id_vars="replication", var_name="metric", value_name="value")
    return long.assign(period="term", category="contract")


class _Judge:
    """Judges batches of candidate contracts on the spec's replications, through the store."""

    def __init__(self, spec: OptimiseSpec, store: ResultStore, executor=None, progress=None):
        self.spec, self.store, self.executor, self.progress = spec, store, executor, progress
        self.scenario, self.contract = spec.base()

    def candidate(self, changes: dict[str, Any], label: str) -> Contract:
        return self.contract.with_changes({**{k.removeprefix("contract."): v for k, v in changes.items()},
                                           "name": label})

    def __call__(self, points: list[int], changes: list[dict], seed: int, replications: int
                 ) -> list[pd.DataFrame]:
        """The term table (replication rows) of each candidate; judged now only where the store lacks it."""
        from sim.experiments.store import tidy

        done = self.store.done()
        missing = [i for i, p in enumerate(points) if not all((p, r) in done for r in range(replications))]
        if missing:
            contracts = [self.candidate(changes[i], f"candidate_{points[i]}") for i in missing]
            result = compare(self.scenario, contracts, replications, seed, executor=self.executor)
            for i, contract in zip(missing, contracts):
                term = result.term[result.term["contract"] == contract.name].assign(years=result.observed_years())
                rows = _term_rows(term)
                for r, part in rows.groupby("replication"):
                    table = part.assign(point=points[i], replication=int(r))
                    self.store.write((points[i], int(r)), tidy(table))
                if self.progress is not None:
                    self.progress(1)
        out = []
        table = self.store.load([(p, r) for p in points for r in range(replications)])
        for p in points:
            d = table[table["point"] == p]
            wide = d.pivot_table(index="replication", columns="metric", values="value", observed=True)
            out.append(wide.reset_index())
        return out


# --- the search ---------------------------------------------------------------------------------------------------


@dataclass
class Optimisation:
    spec: OptimiseSpec
    trials: pd.DataFrame          # trial, each parameter, the judged figures, feasible
    finalists: pd.DataFrame       # the best feasible trials judged again on fresh replications
    winner: int | None            # the trial number of the winning design (None: no feasible candidate)
    contract: Contract | None     # the winning design
    years: int

    def best_in_search(self) -> int | None:
        feasible = self.trials[self.trials["feasible"]]
        return None if feasible.empty else int(feasible.sort_values(["objective", "trial"],
                                                                    ascending=[False, True])["trial"].iloc[0])


def optimise(spec: OptimiseSpec, store: str | Path, executor=None, progress: Callable[[int], Any] | None = None
             ) -> Optimisation:
    """Run the search and the re-evaluation of the finalists (see the module docstring)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = ResultStore(store)
    store.begin(experiment={"kind": "optimise", "spec": spec.model_dump(mode="json"),
                            "scenario": spec.base()[0].raw(), "contract": spec.base()[1].raw()})
    judge = _Judge(spec, store, executor, progress)
    sampler = optuna.samplers.TPESampler(seed=int(spec.seed % 2**32),
                                         n_startup_trials=min(10, max(spec.trials // 3, 1)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rows, terms = [], []
    with unsettled_reported([judge.scenario]):  # once for the search, not once a batch
        for start in range(0, spec.trials, spec.batch):
            asked = [study.ask() for _ in range(min(spec.batch, spec.trials - start))]
            changes = [_suggest(t, spec.parameters) for t in asked]
            terms = judge([t.number for t in asked], changes, spec.seed, spec.replications)
            for t, change, term in zip(asked, changes, terms):
                figures = judged(term, spec)
                t.set_constraint("violation", figures["violation"])  # feasible at 0 or below
                study.tell(t, figures["objective"])
                rows.append({"trial": t.number, **change, **figures})
        trials = pd.DataFrame(rows)
        finalists, winner = _re_evaluate(spec, judge, trials)
    contract = None if winner is None else judge.candidate(
        {p.path: trials.set_index("trial").loc[winner, p.path] for p in spec.parameters}, f"{spec.name}_best")
    return Optimisation(spec, trials, finalists, winner, contract, int(terms[0]["years"].min()))


def _suggest(trial, parameters: list[Parameter]) -> dict[str, Any]:
    out = {}
    for p in parameters:
        if p.values is not None:
            out[p.path] = trial.suggest_categorical(p.path, list(p.values))
        elif p.integer:
            out[p.path] = trial.suggest_int(p.path, int(math.ceil(p.low)), int(math.floor(p.high)))
        else:
            out[p.path] = trial.suggest_float(p.path, float(p.low), float(p.high))
    return out


def fresh_seed(seed: int) -> int:
    """The seed the finalists are judged on: spawned from the spec's, never one of the search's."""
    return int(np.random.SeedSequence(seed, spawn_key=(RE_EVALUATION_KEY,)).generate_state(1, np.uint64)[0] % 2**63)


def _re_evaluate(spec: OptimiseSpec, judge: _Judge, trials: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    feasible = trials[trials["feasible"]].sort_values(["objective", "trial"], ascending=[False, True])
    # distinct designs only: a sampler may ask for the same values twice
    feasible = feasible.drop_duplicates([p.path for p in spec.parameters])
    best = feasible.head(spec.re_evaluate.best)
    if best.empty:
        return pd.DataFrame(), None
    points = [RE_EVALUATION_POINT + k for k in range(len(best))]
    changes = [{p.path: row[p.path] for p in spec.parameters} for _, row in best.iterrows()]
    terms = judge(points, changes, fresh_seed(spec.seed), spec.re_evaluate.replications)
    rows = [{"rank_in_search": k + 1, "trial": int(row["trial"]), **change, **judged(term, spec)}
            for k, ((_, row), change, term) in enumerate(zip(best.iterrows(), changes, terms))]
    finalists = pd.DataFrame(rows)
    ok = finalists[finalists["feasible"]].sort_values(["objective", "rank_in_search"], ascending=[False, True])
    return finalists, (None if ok.empty else int(ok["trial"].iloc[0]))

"""What a commissioner designs on the page, as data: the site scenario, the contract, replications, seed and
provider behaviour — turned into the same plain dicts a scenario or contract TOML file holds, validated by the
same code (so the page refuses bad input with the TOML validation's own messages), and written back as TOML
files that ``pbrsim run`` accepts.

No Streamlit here: the page collects form values into :class:`ContractForm` and calls these functions.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from sim.config.base import ConfigError
from sim.config.contract import MEASURES, Contract, contract_from_dict, load_contract
from sim.config.scenario import Scenario, load_scenario
from sim.core.vocabulary import BANDS
from sim.money.settlement import check

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONTRACTS = ROOT / "scenarios" / "contracts"

SHARE_MODES = ("per year", "linear", "step")
CORE_PAYMENTS = ("monthly_in_advance", "monthly_in_arrears", "quarterly_in_advance")
PAYMENTS = ("monthly_in_arrears", "quarterly_in_arrears", "annually_in_arrears", "on_evidence")
ONCE_PER = ("episode", "client", "window")
BELOW_BASELINE = ("extend", "zero", "hold")
PRICINGS = ("share of pot", "price")
BEHAVIOURS = ("off", "calibrated", "base", "stress")


def scenarios_folder() -> Path:
    """Where the site scenarios are: ``$PBRSIM_SCENARIOS``, else ``./scenarios``, else the repository's."""
    env = os.environ.get("PBRSIM_SCENARIOS")
    if env:
        return Path(env)
    here = Path.cwd() / "scenarios"
    return here if here.is_dir() else ROOT / "scenarios"


@dataclass(frozen=True)
class Site:
    file: str            # the file name, e.g. west_kent.toml
    path: Path
    name: str
    description: str


def sites(folder: Path | None = None) -> tuple[list[Site], list[str]]:
    """The scenarios in ``folder`` that name a contract, and a note for each file that could not be offered."""
    folder = folder or scenarios_folder()
    found, skipped = [], []
    for path in sorted(folder.glob("*.toml")):
        try:
            sc = load_scenario(path)
        except ConfigError as e:
            skipped.append(f"{path.name}: invalid ({e.problems[0][3]})")
            continue
        if sc.contract is None:
            continue  # a system without a contract has nothing to design
        found.append(Site(path.name, path, sc.name, sc.description))
    return found, skipped


def shipped_contracts(folder: Path = SHIPPED_CONTRACTS) -> dict[str, Contract]:
    """The shipped contract designs by name (``scenarios/contracts/*.toml``)."""
    out = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            c = load_contract(path)
        except ConfigError:
            continue
        out[c.name] = c
    return out


def site_contract(scenario: Scenario) -> Contract:
    return load_contract(scenario.contract_path())


# --- provider behaviour (issue 7): wired in as a scenario change ---------------------------------------------


def behaviour_available() -> bool:
    """Whether the provider-behaviour model is there (``sim.experiments.providers.provider_model``, issue 7)."""
    if importlib.util.find_spec("sim.experiments.providers") is None:
        return False
    return hasattr(importlib.import_module("sim.experiments.providers"), "provider_model")


def behaviour_changes(level: str) -> dict:
    """Scenario changes that set the provider's behaviour to ``level``: off (contract-blind, whatever the site's
    scenario says: West Kent's provider responds), calibrated, base or stress (``behaviour.mode``; the behaviour
    model's own defaults; calibrated: fitted to the national pilot evaluation)."""
    if level not in BEHAVIOURS:
        raise ValueError(f"provider behaviour must be one of {BEHAVIOURS}, got {level!r}")
    if level == "off":
        return {"behaviour.mode": "off"}
    if not behaviour_available():
        raise ValueError("provider behaviour is not available yet (sim.provider.model): only 'off' can be run")
    return {"behaviour.mode": level}


# --- the contract form ---------------------------------------------------------------------------------------


@dataclass
class OutcomeRow:
    """One line of the outcome menu."""

    name: str
    measure: str
    paid: bool = False
    pricing: str = "share of pot"        # or "price"
    amount: float = 0.0                  # share of pot in percent, or pounds per outcome
    expected_volume: str = "baseline"    # "baseline", a number of outcomes a year, or BY_BAND (the table below)
    volumes_by_band: dict | None = None  # the template's tender volumes by band, kept while the field says BY_BAND
    window_days: float = 365.0
    once_per: str = "window"
    lag_days: float = 0.0
    payment: str = "quarterly_in_arrears"
    kept: dict = field(default_factory=dict)  # the template's other keys (escalator, caps...), kept as they are


@dataclass
class ContractForm:
    """Every value the contract form shows. Shares and weights as the commissioner types them (percent)."""

    name: str
    description: str
    annual_value: float
    term_years: int
    extension_years: int
    share_mode: str                      # per year, linear, step
    shares_by_year: list[float]          # percent
    linear: tuple[float, float]          # percent, first and last year
    step: tuple[float, float, float]     # percent: first, rise a year, maximum
    core_payment: str
    band_weights: dict[str, float]
    outcomes: list[OutcomeRow]
    offending: bool
    offending_pot: float = 0.0
    offending_paid_at_baseline: float = 53.0   # percent
    offending_full_at_reduction: float = 4.3   # percent
    offending_below_baseline: str = "extend"
    offending_price_per_offence: float = 3900.0
    offending_lag_days: float = 274.0
    offending_baseline: float | None = None    # recorded offences a year (per member or in total); None: the
    #                                            cohort's own in the year before the contract
    offending_measure: str = "per_member"      # not shown: kept from the template
    pbr_cap: float | None = None               # a multiple of the year's pot
    income_floor: float | None = None          # percent of the annual value
    income_cap: float | None = None            # percent of the annual value
    term_cap: float | None = None              # pounds
    reconciliation_lag_days: float = 91.0
    kept: dict = field(default_factory=dict)   # what the form does not show (subcontractors, investor, service
    #                                            terms...), kept from the template as written

    @property
    def years(self) -> int:
        return int(self.term_years) + int(self.extension_years)


# the contract keys the form shows; any other key of the template is kept as written
FORM_KEYS = ("name", "description", "annual_value", "term_years", "extension_years", "pbr_share", "core_payment",
             "band_weights", "outcomes", "offending", "pbr_cap", "income_floor", "income_cap", "term_cap",
             "reconciliation_lag_days")


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * float(x), 6)


def _frac(x: float | None) -> float | None:
    return None if x is None else round(float(x) / 100.0, 10)


def form_from_contract(contract: Contract, years: int | None = None) -> ContractForm:
    """The form filled in from a contract (a shipped design or the site's own)."""
    raw = contract.raw()
    n = years or contract.years
    share = contract.pbr_share
    by_year = [_pct(contract.pbr_share.for_year(k, contract.years)) for k in range(1, contract.years + 1)]
    by_year = (by_year + [by_year[-1]] * n)[:n]
    linear = tuple(_pct(v) for v in share.linear) if share.linear else (by_year[0], by_year[-1])
    step = tuple(_pct(v) for v in share.step) if share.step else (by_year[0], 0.0, by_year[-1])
    mode = "linear" if share.linear else "step" if share.step else "per year"
    rows = []
    for name, o in contract.outcomes.items():
        written = raw.get("outcomes", {}).get(name, {})
        kept = {k: v for k, v in written.items() if k in ("escalator", "band_weights", "cap_per_year",
                                                         "clawback_days")}
        rows.append(OutcomeRow(
            name=name, measure=o.measure, paid=True,
            pricing="price" if o.price is not None else "share of pot",
            amount=float(o.price) if o.price is not None else _pct(o.share_of_pot),
            expected_volume=(BY_BAND if isinstance(o.expected_volume, dict) else str(o.expected_volume)
                             if o.expected_volume is not None else "baseline"),
            volumes_by_band=dict(o.expected_volume) if isinstance(o.expected_volume, dict) else None,
            window_days=o.window_days, once_per=o.once_per, lag_days=o.lag_days, payment=o.payment, kept=kept))
    used = {r.measure for r in rows} | {r.name for r in rows}
    for measure in MEASURES:
        if measure not in used:
            rows.append(OutcomeRow(name=measure, measure=measure, paid=False))
    off = contract.offending
    return ContractForm(
        name=contract.name, description=contract.description, annual_value=contract.annual_value,
        term_years=contract.term_years if years is None else min(contract.term_years, n),
        extension_years=contract.extension_years if years is None else n - min(contract.term_years, n),
        share_mode=mode, shares_by_year=by_year, linear=linear, step=step, core_payment=contract.core_payment,
        band_weights={b: float(contract.band_weights.get(b, 0.0)) for b in BANDS}, outcomes=rows,
        offending=off is not None,
        offending_pot=off.pot if off else 200_000.0,
        offending_paid_at_baseline=_pct(off.paid_at_baseline) if off else 53.0,
        offending_full_at_reduction=_pct(off.full_at_reduction) if off else 4.3,
        offending_below_baseline=off.below_baseline if off else "extend",
        offending_price_per_offence=off.price_per_offence if off else 3900.0,
        offending_lag_days=off.lag_days if off else 274.0,
        offending_baseline=off.baseline_offences if off else None,
        offending_measure=off.measure if off else "per_member",
        pbr_cap=contract.pbr_cap, income_floor=_pct(contract.income_floor), income_cap=_pct(contract.income_cap),
        term_cap=contract.term_cap, reconciliation_lag_days=contract.reconciliation_lag_days,
        kept={k: copy.deepcopy(v) for k, v in raw.items() if k not in FORM_KEYS})


BY_BAND = "tender volumes by band"  # the form's word for a template's table of expected volumes by band


def _volume(text: str) -> str | float:
    text = str(text).strip()
    if text == "baseline":
        return text
    try:
        return float(text)
    except ValueError:
        return text  # refused by validation, with its message


def describe(form: ContractForm) -> str:
    """The design in words, from the values on the form (so a download never carries a template's description of
    other terms)."""
    if form.share_mode == "per year":
        shares = " / ".join(f"{v:g}%" for v in form.shares_by_year[:form.years]) + " by contract year"
    elif form.share_mode == "linear":
        shares = f"{form.linear[0]:g}% rising linearly to {form.linear[1]:g}%"
    else:
        shares = f"{form.step[0]:g}%, rising {form.step[1]:g} points a year to {form.step[2]:g}%"
    paid = [f"{r.name} {r.amount:g}%" if r.pricing == "share of pot" else f"{r.name} £{r.amount:,.0f}"
            for r in form.outcomes if r.paid]
    parts = [f"£{form.annual_value / 1e6:,.2f}m a year for {form.term_years} years"
             + (f" (+{form.extension_years} optional)" if form.extension_years else ""),
             f"at risk on outcomes {shares}"]
    if paid:
        parts.append("outcomes " + ", ".join(paid))
    if form.offending:
        parts.append(f"offending pot £{form.offending_pot:,.0f} a year")
    return "Designed on the pbrsim web app: " + "; ".join(parts)


def kept_terms(form: ContractForm) -> list[str]:
    """The template's terms the form does not show, kept as written (said on the page, never silently)."""
    out = []
    for key, value in form.kept.items():
        if key == "subcontractors" and value:
            out.append("subcontractors: " + ", ".join(
                f"{v.get('name', '?')} ({v.get('share_of_income', 0):.0%} of income, {v.get('share_of_cost', 0):.0%} "
                f"of cost" + (f", until {v['until']}" if v.get("until") else "") + ")" if isinstance(v, dict)
                else str(v) for v in value))
        elif value not in (None, [], {}):
            out.append(f"{key.replace('_', ' ')}: {_short(value)}")
    for row in form.outcomes:
        if row.paid and row.kept:
            out.append(f"{row.name}: " + ", ".join(f"{k.replace('_', ' ')} {_short(v)}" for k, v in row.kept.items()))
    return out


def contract_raw(form: ContractForm) -> dict:
    """The contract as a TOML file would hold it (fractions, days, pounds)."""
    raw: dict = {"name": form.name, "description": form.description, "annual_value": float(form.annual_value),
                 "term_years": int(form.term_years), "extension_years": int(form.extension_years)}
    if form.share_mode == "per year":
        raw["pbr_share"] = {"by_year": [_frac(x) for x in form.shares_by_year[:form.years]]}
    elif form.share_mode == "linear":
        raw["pbr_share"] = {"linear": [_frac(x) for x in form.linear]}
    elif form.share_mode == "step":
        raw["pbr_share"] = {"step": [_frac(x) for x in form.step]}
    else:
        raise ValueError(f"share mode must be one of {SHARE_MODES}, got {form.share_mode!r}")
    raw["core_payment"] = form.core_payment
    raw["band_weights"] = {b: float(w) for b, w in form.band_weights.items()}
    for key, value in (("pbr_cap", form.pbr_cap), ("income_floor", _frac(form.income_floor)),
                       ("income_cap", _frac(form.income_cap)), ("term_cap", form.term_cap)):
        if value is not None:
            raw[key] = float(value)
    raw["reconciliation_lag_days"] = float(form.reconciliation_lag_days)
    outcomes = {}
    for row in form.outcomes:
        if not row.paid:
            continue
        o = {"measure": row.measure}
        if row.pricing == "price":
            o["price"] = float(row.amount)
        else:
            o["share_of_pot"] = _frac(row.amount)
            o["expected_volume"] = (dict(row.volumes_by_band) if str(row.expected_volume).strip() == BY_BAND
                                    and row.volumes_by_band else _volume(row.expected_volume))
        o.update({"window_days": float(row.window_days), "once_per": row.once_per,
                  "lag_days": float(row.lag_days), "payment": row.payment})
        o.update(copy.deepcopy(row.kept))
        outcomes[row.name] = o
    if outcomes:
        raw["outcomes"] = outcomes
    if form.offending:
        raw["offending"] = {
            "pot": float(form.offending_pot), "paid_at_baseline": _frac(form.offending_paid_at_baseline),
            "full_at_reduction": _frac(form.offending_full_at_reduction),
            "below_baseline": form.offending_below_baseline,
            "price_per_offence": float(form.offending_price_per_offence),
            "lag_days": float(form.offending_lag_days), "measure": form.offending_measure}
        if form.offending_baseline:
            raw["offending"]["baseline_offences"] = float(form.offending_baseline)
    raw.update(copy.deepcopy(form.kept))
    return raw


# --- the whole design -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """A validated design: what the simulation and settlement need, all as plain data."""

    site: str                 # the scenario file it started from
    scenario: Scenario        # with the horizon, seed and behaviour changes applied
    contract: Contract
    replications: int
    behaviour: str

    @property
    def seed(self) -> int:
        return self.scenario.seed

    @property
    def seeds(self) -> tuple[tuple[int, int], ...]:
        """``(root seed, r)`` for each replication r = 0, 1, ...: replication r is simulated from
        ``sim.experiments.seeds.replication_seed(seed, r)``, the seed replication r of ``pbrsim compare`` and
        ``pbrsim replicate`` with ``--seed SEED`` uses (plain pairs, so the page's cache can hash them)."""
        return tuple((self.seed, r) for r in range(self.replications))


class DesignError(ValueError):
    """Problems with a design, each a line as the TOML validation words it (file, key path, value, message)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


def _lines(e: ConfigError, source: str) -> list[str]:
    return [f"{f if f else source}: {k} = {_short(v)}: {m}" if k else f"{f if f else source}: {m}"
            for f, k, v, m in e.problems]


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


MAX_PAGE_REPLICATIONS = 200
MAX_YEARS = 25


def _outside(label: str, value, low: float, high: float, unit: str = "") -> str | None:
    """A line naming the field as the page labels it, in its units, if ``value`` is outside [low, high]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f"{label} = {value!r}: give a number"
    if v != v or not low <= v <= high:
        return f"{label} = {_num(v)}{unit}: must be between {_num(low)}{unit} and {_num(high)}{unit}"
    return None


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:g}"


def form_problems(form: ContractForm, replications) -> list[str]:
    """What is wrong with the form in its own words and units (the labels the page shows, percent where it shows
    percent), checked before the values are turned into a contract."""
    lines = [
        _outside("Term (years)", form.term_years, 1, MAX_YEARS),
        _outside("Extension (years)", form.extension_years, 0, MAX_YEARS),
        _outside("Annual value (£)", form.annual_value, 1, 1e9),
        _outside("Replications", replications, 1, MAX_PAGE_REPLICATIONS)
        and f"{_outside('Replications', replications, 1, MAX_PAGE_REPLICATIONS)} (the page's limit; pbrsim "
            f"compare -n takes more)",
    ]
    years = max(min(int(form.term_years or 0) + int(form.extension_years or 0), MAX_YEARS), 0)
    if form.share_mode == "per year":
        lines += [_outside(f"Year {k} PbR share (%)", v, 0, 100, "%")
                  for k, v in enumerate(form.shares_by_year[:years], 1)]
    elif form.share_mode == "linear":
        lines += [_outside(f"{w} year PbR share (%)", v, 0, 100, "%") for w, v in zip(("First", "Last"), form.linear)]
    else:
        lines += [_outside("First year PbR share (%)", form.step[0], 0, 100, "%"),
                  _outside("Rise a year (points)", form.step[1], -100, 100, " points"),
                  _outside("Most (%)", form.step[2], 0, 100, "%")]
    lines += [_outside(f"{b.replace('_', ' ')} weight", w, 0, 10) for b, w in form.band_weights.items()]
    for row in form.outcomes:
        if not row.paid:
            continue
        if row.pricing == "price":
            lines.append(_outside(f"Tariff for {row.name} (£ an outcome)", row.amount, 0, 1e7))
        else:
            lines.append(_outside(f"Tariff for {row.name} (% of the outcome pot)", row.amount, 0, 100, "%"))
            volume = str(row.expected_volume).strip()
            if volume not in ("baseline", BY_BAND):
                try:
                    if float(volume) <= 0:
                        raise ValueError
                except ValueError:
                    lines.append(f"Expected volume for {row.name} = {volume!r}: give the number of outcomes a year "
                                 f"the tender expects (above 0), or 'baseline' (the year before the contract)")
        lines += [_outside(f"Window for {row.name} (days)", row.window_days, 1, 3650),
                  _outside(f"Lag for {row.name} (days)", row.lag_days, 0, 3650)]
    if form.offending:
        lines += [_outside("Pot (£ a year)", form.offending_pot, 0, 1e9),
                  _outside("Paid at baseline (%)", form.offending_paid_at_baseline, 0, 100, "%"),
                  _outside("All paid at a reduction of (%)", form.offending_full_at_reduction, 0.01, 100, "%"),
                  _outside("Offending lag (days)", form.offending_lag_days, 0, 3650)]
    for label, value in (("Income floor (% of value)", form.income_floor), ("Income cap (% of value)",
                                                                           form.income_cap)):
        if value is not None:
            lines.append(_outside(label, value, 0, 1000, "%"))
    return [line for line in lines if line]


def named_fields(lines: list[str]) -> list[str]:
    """The page labels the problem lines of :func:`form_problems` name (the text before `` = ``), also without a
    trailing unit in brackets where the field's own label has none (``Tariff for planned_exit (£ an outcome)``)."""
    fields = []
    for line in lines:
        if " = " not in line:
            continue
        label = line.split(" = ", 1)[0]
        fields.append(label)
        if label.endswith(")") and (" (£ " in label or " (% " in label):
            fields.append(label.rsplit(" (", 1)[0])
    return list(dict.fromkeys(fields))


def highlight_css(fields: list[str]) -> str:
    """A style block marking the inputs labelled ``fields`` (Streamlit gives each input its label as
    ``aria-label``): a red outline and a tinted background, so a refused design shows where it is wrong."""
    if not fields:
        return ""
    quoted = [f.replace("\\", "\\\\").replace('"', '\\"') for f in fields]
    selectors = ", ".join(f'input[aria-label="{q}"]' for q in quoted)
    return (f"<style>{selectors} {{outline: 3px solid #b00020 !important; outline-offset: -3px; "
            f"background-color: #fde8ea !important;}}</style>")


def form_warnings(form: ContractForm) -> list[str]:
    """What the form allows but a commissioner should know: an outcome pot whose shares do not add to 100%."""
    shares = [float(r.amount) for r in form.outcomes if r.paid and r.pricing == "share of pot"]
    total = sum(shares)
    if shares and abs(total - 100.0) > 0.05:
        gap = ("is paid on nothing" if total < 100 else "more than the pot is promised")
        return [f"The outcome tariffs' shares of the pot add to {total:g}%, not 100%: {abs(100 - total):g}% of "
                f"the pot {gap}."]
    return []


# the system what-ifs: (label, lowest, highest); applied to the site's scenario before it is simulated
SYSTEM_FIELDS = {"referral_change": ("Referral change (%)", -50.0, 100.0),
                 "recovery_workers": ("Recovery workers (FTE)", 1.0, 500.0),
                 "vacancies": ("Recovery-worker vacancies (%)", 0.0, 90.0),
                 "assessors": ("Assessors (LASARS)", 1.0, 100.0),
                 "inpatient_detox_beds": ("Inpatient detox beds", 0.0, 200.0),
                 "rehab_places": ("Residential rehab places", 0.0, 500.0)}


def system_defaults(scenario: Scenario) -> dict[str, float]:
    """The what-if fields as the site's scenario has them (no change)."""
    c = scenario.capacity
    return {"referral_change": 0.0, "recovery_workers": float(c.recovery_workers), "vacancies": 0.0,
            "assessors": float(c.assessors), "inpatient_detox_beds": float(c.inpatient_detox_beds),
            "rehab_places": float(c.rehab_places)}


def system_changes(scenario: Scenario, values: dict[str, float] | None) -> dict:
    """The scenario changes the what-ifs make: first referrals of every group scaled, the recovery workers in
    post (FTE less vacancies), and the capacity of each service."""
    if not values:
        return {}
    base = system_defaults(scenario)
    out: dict = {}
    change = float(values.get("referral_change", 0.0))
    if change:
        arrivals = scenario.raw()["population"]["arrivals_per_year"]
        out["population.arrivals_per_year"] = ({g: float(v) * (1 + change / 100) for g, v in arrivals.items()}
                                               if isinstance(arrivals, dict) else float(arrivals) * (1 + change / 100))
    workers = float(values.get("recovery_workers", base["recovery_workers"])) * \
        (1 - float(values.get("vacancies", 0.0)) / 100)
    if workers != base["recovery_workers"]:
        out["capacity.recovery_workers"] = round(workers, 4)
    for key in ("assessors", "inpatient_detox_beds", "rehab_places"):
        if key in values and float(values[key]) != base[key]:
            out[f"capacity.{key}"] = int(round(float(values[key])))
    return out


def system_problems(values: dict[str, float] | None) -> list[str]:
    return [line for key, (label, low, high) in SYSTEM_FIELDS.items() if values and key in values
            for line in [_outside(label, values[key], low, high, "%" if "%" in label else "")] if line]


def build_design(site: Site, form: ContractForm, replications: int, seed: int, behaviour: str,
                 system: dict[str, float] | None = None) -> Design:
    """Validate everything at once; raise :class:`DesignError` with every problem: first in the form's own words
    and units (:func:`form_problems`), else as the TOML validation words it."""
    problems: list[str] = form_problems(form, replications) + system_problems(system)
    if problems:
        raise DesignError(problems)
    contract = None
    try:
        contract = contract_from_dict(contract_raw(form), "the contract form")
    except ConfigError as e:
        problems += _lines(e, "the contract form")
    except ValueError as e:
        problems.append(f"the contract form: {e}")
    scenario = None
    try:
        scenario = site_scenario(site, seed, form.years, behaviour, system)
    except ConfigError as e:
        problems += _lines(e, site.file)
    except ValueError as e:
        problems.append(f"{site.file}: {e}")
    if contract is not None and scenario is not None:
        try:
            check(contract, scenario)
        except ConfigError as e:
            problems += _lines(e, "the contract form")
    if problems:
        raise DesignError(problems)
    return Design(site.file, scenario, contract, int(replications), behaviour)


def site_scenario(site: Site, seed: int, years: int, behaviour: str,
                  system: dict[str, float] | None = None) -> Scenario:
    """The site's scenario as its file has it, with the page's seed, a horizon covering the contract years, the
    provider's behaviour and (for the site they were set on) the system what-ifs."""
    base = load_scenario(site.path)
    changes = {"seed": seed, **_horizon_changes(base, years), **system_changes(base, system)}
    changes.update(behaviour_changes(behaviour))
    return base.with_changes(changes)


def _horizon_changes(scenario: Scenario, years: int) -> dict:
    """The reported period covers the contract years (term and extension)."""
    h = scenario.horizon
    if h.end is None and h.years == years:
        return {}
    return {"horizon.years": years, "horizon.end": None}


def on_site(design: Design, site: Site) -> Design:
    """The same contract, replications, seed and provider on another site's scenario as written (its own system,
    warm-up and calibration; the page's what-ifs belong to the site they were set for): one design across sites.
    :class:`DesignError` in the validation's words, naming the site's file, if it cannot run there."""
    try:
        scenario = site_scenario(site, design.seed, design.scenario.horizon.years, design.behaviour)
        check(design.contract, scenario)
    except ConfigError as e:
        raise DesignError(_lines(e, site.file)) from None
    except ValueError as e:
        raise DesignError([f"{site.file}: {e}"]) from None
    return Design(site.file, scenario, design.contract, design.replications, design.behaviour)


def for_compare(design: Design, contract: Contract) -> Design:
    """The same design under another contract (the same simulated clients when behaviour is off)."""
    return Design(design.site, design.scenario, contract, design.replications, design.behaviour)


# --- files ---------------------------------------------------------------------------------------------------


def contract_file_name(contract: Contract) -> str:
    return f"{contract.name}.toml"


def scenario_toml(design: Design) -> str:
    """The scenario as a TOML file that ``pbrsim run`` accepts, naming the contract file saved beside it."""
    import tomli_w

    from sim.report.output import plain_toml

    raw = copy.deepcopy(design.scenario.raw())
    raw["contract"] = contract_file_name(design.contract)
    header = (f"# Written by the pbrsim web app from {design.site}: every number and its source are in that file\n"
              f"# (scenarios/{design.site}); the horizon, seed and contract below were set on the page.\n"
              f"# Run: pbrsim run {Path(design.site).stem}_app.toml   (the contract file beside it)\n"
              f"# The page's replications: pbrsim compare {Path(design.site).stem}_app.toml --contracts "
              f"{contract_file_name(design.contract)} --replications {design.replications} --seed {design.seed}\n"
              f"# (its replication r, from 0, is the page's replication r)\n\n")
    return header + tomli_w.dumps(plain_toml(raw))


def contract_toml(design: Design) -> str:
    """The contract as a TOML file (validated again by ``pbrsim run``)."""
    import tomli_w

    from sim.report.output import plain_toml

    header = ("# Written by the pbrsim web app: the contract designed on the page (values entered there are "
              "estimates;\n# the shipped designs in scenarios/contracts/ give the source of theirs).\n\n")
    return header + tomli_w.dumps(plain_toml(design.contract.raw()))


def scenario_file_name(design: Design) -> str:
    return f"{Path(design.site).stem}_app.toml"


# --- the About pages -----------------------------------------------------------------------------------------

ABOUT = {"Overview": ("README.md", ["# pbrsim", "## The model"]),
         "Assumptions and limitations": ("README.md", ["## Limitations (known, and where they will be addressed)"]),
         "Sources and how to cite": ("README.md", ["## Default parameters and how to cite them"]),
         "Citation": ("CITATION.cff", None), "Licence": ("LICENSE", None), "Change log": ("CHANGELOG.md", None)}


def about_text(page: str) -> tuple[str, bool]:
    """The text of an About page from the repository's own files (README sections, CITATION.cff, LICENSE,
    CHANGELOG.md) and whether it is Markdown; the same words as the files, so the page never drifts from them."""
    file, headings = ABOUT[page]
    path = ROOT / file
    if not path.is_file():
        return f"{file} is not installed with this copy of pbrsim.", False
    text = path.read_text(encoding="utf-8")
    if headings is None:
        return text, file.endswith(".md")
    lines, out, keep = text.splitlines(), [], False
    for line in lines:
        if line.startswith("#") and not line.startswith("###"):
            keep = line.strip() in headings
        if keep and not line.lstrip().startswith("!["):  # README images are not served by the page
            out.append(line)
    return "\n".join(out), True

"""The commissioners' web app (Streamlit). Thin: widgets collect a design, the pbrsim API simulates and settles
it (sim.webapp.design, sim.webapp.runs), and plain functions draw it (sim.webapp.views).

Start it with ``pbrsim app`` or ``python -m sim.webapp``. The slow step (simulation) is cached on the scenario as
written and the seeds, so a tariff change only re-settles; replications run in a pool of worker processes.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import streamlit as st

from sim.config.scenario import load_scenario
from sim.core.vocabulary import BANDS
from sim.webapp import design as D
from sim.webapp import runs as R
from sim.webapp import views as V

log = logging.getLogger("pbrsim.webapp")
THIS_DESIGN = "this design"

# --- the slow step, cached ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def pool():
    """Worker processes for replications (spawn context), for the life of the server."""
    return R.make_pool()


@st.cache_data(max_entries=8, show_spinner=False)
def simulated(scenario_key: str, seeds: tuple[int, ...], _scenario_raw: dict, _responds_to: dict | None):
    """The Histories of a design's replications and their Activity (measured in the workers that simulated them)."""
    # the progress bar is made here, inside the cached function, so a cache hit replays it cleanly;
    # the key (scenario as written, seeds, and the contract only when the provider responds to it) names the rest
    bar = st.progress(0.0, text=f"Simulating {len(seeds)} replication{'s' * (len(seeds) > 1)}…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Simulating: {done} of {total} replications done")

    out = R.simulate_measured(_scenario_raw, seeds, pool() if len(seeds) > 1 else None, progress, _responds_to)
    bar.empty()
    return out


def simulated_of(design: D.Design):
    key, seeds = R.simulation_key(design)
    return simulated(key, seeds, design.scenario.raw(), R.responds_to(design))


def histories_of(design: D.Design):
    return simulated_of(design)[0]


@st.cache_data(max_entries=4, show_spinner=False)
def activity(scenario_key: str, seeds: tuple[int, ...], _design: D.Design):
    return simulated_of(_design)[1]


@st.cache_resource(max_entries=8, show_spinner=False)
def kept_histories(scenario_key: str, seeds: tuple[int, ...], _design: D.Design):
    """The same History objects from rerun to rerun (``simulated`` hands out copies): what settlement derives
    from a History (achievements, costs, offending cohorts) is kept on it, so a tariff change only re-prices."""
    return histories_of(_design)


@st.cache_data(max_entries=32, show_spinner=False)
def settled(scenario_key: str, seeds: tuple[int, ...], contract_key: str, _design: D.Design):
    # settled here, not in the pool: shipping Histories to workers would lose what is kept on them
    return R.settle_replications(_design.contract.raw(), kept_histories(scenario_key, seeds, _design),
                                 _design.scenario.raw())


@st.cache_data(max_entries=16, show_spinner=False)
def gaming(scenario_key: str, seeds: tuple[int, ...], _design: D.Design):
    return R.gaming(kept_histories(scenario_key, seeds, _design), _design.scenario.raw())


def settle(design: D.Design):
    return settled(*R.simulation_key(design), R.canonical(design.contract.raw()), design)


def activity_of(design: D.Design):
    return activity(*R.simulation_key(design), design)


def shown(render, what: str) -> None:
    """Run a part of the page; a failure becomes a message (and a log entry), never a traceback."""
    try:
        render()
    except Exception as e:  # the page must stay usable whatever happens in one part of it
        log.exception("%s failed", what)
        st.error(f"{what} failed: {e}")


# --- Design a contract ---------------------------------------------------------------------------------------


def fill(prefix_values: dict, force: bool) -> None:
    for key, value in prefix_values.items():
        if force or key not in st.session_state:
            st.session_state[key] = value


def form_defaults(form: D.ContractForm) -> dict:
    values = {"annual_value": float(form.annual_value), "term_years": int(form.term_years),
              "extension_years": int(form.extension_years), "share_mode": form.share_mode,
              "linear_first": form.linear[0], "linear_last": form.linear[1], "step_first": form.step[0],
              "step_rise": form.step[1], "step_max": form.step[2], "core_payment": form.core_payment,
              "offending_on": form.offending, "offending_pot": float(form.offending_pot),
              "offending_at_baseline": float(form.offending_paid_at_baseline),
              "offending_full_at": float(form.offending_full_at_reduction),
              "offending_below": form.offending_below_baseline,
              "offending_price": float(form.offending_price_per_offence),
              "offending_lag": float(form.offending_lag_days),
              "offending_baseline": float(form.offending_baseline or 0.0),
              "pbr_cap": float(form.pbr_cap or 0.0),
              "income_floor": float(form.income_floor or 0.0), "income_cap": float(form.income_cap or 0.0),
              "term_cap": float(form.term_cap or 0.0), "reconciliation_lag": float(form.reconciliation_lag_days)}
    values.update({f"share_{k}": float(v) for k, v in enumerate(form.shares_by_year, 1)})
    values.update({f"weight_{b}": float(w) for b, w in form.band_weights.items()})
    for row in form.outcomes:
        values.update({f"pay_{row.name}": row.paid, f"pricing_{row.name}": row.pricing,
                       f"amount_{row.name}": float(row.amount), f"volume_{row.name}": str(row.expected_volume),
                       f"window_{row.name}": float(row.window_days), f"once_{row.name}": row.once_per,
                       f"lag_{row.name}": float(row.lag_days), f"payment_{row.name}": row.payment})
    return values


def collected_form(template: D.ContractForm, years: int) -> D.ContractForm:
    s = st.session_state
    shares = [s.get(f"share_{k}", template.shares_by_year[-1]) for k in range(1, years + 1)]
    rows = [dataclasses.replace(row, paid=s[f"pay_{row.name}"], pricing=s[f"pricing_{row.name}"],
                                amount=s[f"amount_{row.name}"], expected_volume=s[f"volume_{row.name}"],
                                window_days=s[f"window_{row.name}"], once_per=s[f"once_{row.name}"],
                                lag_days=s[f"lag_{row.name}"], payment=s[f"payment_{row.name}"])
            for row in template.outcomes]
    none_if_zero = lambda v: None if not v else v  # noqa: E731
    form = dataclasses.replace(
        template, annual_value=s["annual_value"], term_years=s["term_years"], extension_years=s["extension_years"],
        share_mode=s["share_mode"], shares_by_year=shares, linear=(s["linear_first"], s["linear_last"]),
        step=(s["step_first"], s["step_rise"], s["step_max"]), core_payment=s["core_payment"],
        band_weights={b: s[f"weight_{b}"] for b in BANDS}, outcomes=rows, offending=s["offending_on"],
        offending_pot=s["offending_pot"], offending_paid_at_baseline=s["offending_at_baseline"],
        offending_full_at_reduction=s["offending_full_at"], offending_below_baseline=s["offending_below"],
        offending_price_per_offence=s["offending_price"], offending_lag_days=s["offending_lag"],
        offending_baseline=none_if_zero(s["offending_baseline"]), pbr_cap=none_if_zero(s["pbr_cap"]),
        income_floor=none_if_zero(s["income_floor"]), income_cap=none_if_zero(s["income_cap"]), term_cap=none_if_zero(s["term_cap"]),
        reconciliation_lag_days=s["reconciliation_lag"])
    # the design is the page's own: its name is not a shipped design's (an uploaded design keeps its own), and
    # its description says what is on the form, not what the template said of other terms
    name = template.name if s.get("_uploaded_name") == template.name else f"{template.name}_page"
    return dataclasses.replace(form, name=name, description=D.describe(form))


def uploaded_contract(box) -> None:
    """A contract file loaded on the page (a design downloaded earlier): validated, then offered as the first
    template and chosen, so the form shows it."""
    import tomllib

    file = box.file_uploader("Load a contract file (TOML)", type=["toml"], key="upload",
                             help="a design downloaded from this page, or any contract file pbrsim accepts")
    if file is None or st.session_state.get("_uploaded_id") == file.file_id:
        return
    st.session_state["_uploaded_id"] = file.file_id
    try:
        raw = tomllib.loads(file.getvalue().decode("utf-8"))
        contract = D.contract_from_dict(raw, file.name)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        box.error(f"{file.name} is not a TOML file: {e}")
        return
    except D.ConfigError as e:
        box.error(f"{file.name} is not a contract pbrsim accepts:\n\n" +
                  "\n".join(f"- {line}" for line in D._lines(e, file.name)))
        return
    st.session_state["_uploaded"] = contract
    st.session_state["_uploaded_name"] = contract.name
    st.session_state["template"] = contract.name
    st.session_state["_form_of"] = None  # fill the form from it


def design_page() -> None:
    sites, skipped = D.sites()
    if not sites:
        st.error(f"No scenario naming a contract in {D.scenarios_folder()}/.")
        return
    by_file = {s.file: s for s in sites}
    if st.session_state.get("site") not in by_file:  # West Kent first: the calibrated, documented system
        st.session_state["site"] = "west_kent.toml" if "west_kent.toml" in by_file else sites[0].file
    top = st.columns([2, 2, 1, 1, 1.4])
    site = by_file[top[0].selectbox("Site scenario", list(by_file), key="site",
                                    format_func=lambda f: f"{by_file[f].name} ({f})",
                                    help="the scenarios in scenarios/ that name a contract")]
    if skipped:
        top[0].caption("Not offered: " + "; ".join(skipped))
    scenario = load_scenario(site.path)
    own = D.site_contract(scenario)
    uploaded_contract(st)
    templates = {own.name: own, **{k: v for k, v in D.shipped_contracts().items() if k != own.name}}
    if st.session_state.get("_uploaded") is not None:
        up = st.session_state["_uploaded"]
        templates = {up.name: up, **{k: v for k, v in templates.items() if k != up.name}}
    name = top[1].selectbox("Start from contract", list(templates), key="template",
                            format_func=lambda n: f"{n.replace('_', ' ')}: {templates[n].description}"
                            if templates[n].description else n.replace("_", " "),
                            help="the site's own contract, then the shipped designs (scenarios/contracts/), each "
                                 "with its own description")
    template = D.form_from_contract(templates[name])
    # a new template fills the form; a new site keeps the design (one design across sites) but takes the
    # site's own system (its capacities) and seed
    fresh = st.session_state.get("_form_of") != name
    new_site = st.session_state.get("_site_of") != site.file
    fill(form_defaults(template), force=fresh)
    behaviour_ok = D.behaviour_available()
    # the provider responding as the national pilot evaluation found, unless the user asks for contract-blind
    fill({"replications": 5, "behaviour": "calibrated" if behaviour_ok else "off"}, force=fresh)
    fill({"seed": int(scenario.seed), **{f"sys_{k}": v for k, v in D.system_defaults(scenario).items()}},
         force=new_site)
    st.session_state["_form_of"], st.session_state["_site_of"] = name, site.file
    top[2].number_input("Term (years)", step=1, key="term_years", help="1 to 25 years")
    top[3].number_input("Extension (years)", step=1, key="extension_years", help="0 to 25 years")
    top[4].radio("PbR share given", D.SHARE_MODES, key="share_mode", horizontal=True,
                 help="per contract year, a straight line from the first to the last year, or a step a year")
    years = min(max(int(st.session_state["term_years"] or 0) + int(st.session_state["extension_years"] or 0), 1),
                D.MAX_YEARS)
    fill({f"share_{k}": template.shares_by_year[-1] for k in range(1, years + 1)}, force=False)

    kept = D.kept_terms(template)
    if kept:
        st.caption("Kept from the template as written (not on this form, and in the downloaded file): "
                   + "; ".join(kept))
    with st.form("contract_form"):
        head = st.columns([1.2, 1.2, 1.2, 1, 1])
        head[0].number_input("Annual value (£)", step=100_000.0, key="annual_value", format="%.0f")
        head[1].selectbox("Core paid", D.CORE_PAYMENTS, key="core_payment")
        head[2].number_input("Replications", step=1, key="replications",
                             help=f"simulated histories, 1 to {D.MAX_PAGE_REPLICATIONS}; every design is settled "
                                  "on the same ones")
        head[3].number_input("Seed", step=1, key="seed", help="root seed: replication r (from 0) is replication r of pbrsim compare / pbrsim replicate --seed SEED")
        head[4].radio("Provider behaviour", D.BEHAVIOURS if behaviour_ok else ("off",), key="behaviour",
                      horizontal=True, help="how the provider responds to the contract's incentives")
        if not behaviour_ok:
            head[4].caption("base and stress arrive with the provider-behaviour model (issue 7); until then the "
                            "provider delivers the same service under every contract")
        else:
            head[4].caption("calibrated (the default: fitted to the national pilot evaluation's year-1 "
                            "findings), base, stress: the provider responds to this contract, so a tariff change "
                            "simulates again (tens of seconds); off: contract-blind, the same service under every "
                            "contract, and a tariff change only re-prices (seconds)")

        st.markdown("**Share of the annual value paid on outcomes (%)**")
        mode = st.session_state["share_mode"]
        if mode == "per year":
            cols = st.columns(min(years, 8))
            for k in range(1, years + 1):
                cols[(k - 1) % len(cols)].number_input(f"Year {k} PbR share (%)", step=5.0, key=f"share_{k}")
        elif mode == "linear":
            c = st.columns(4)
            c[0].number_input("First year PbR share (%)", step=5.0, key="linear_first")
            c[1].number_input("Last year PbR share (%)", step=5.0, key="linear_last")
        else:
            c = st.columns(4)
            c[0].number_input("First year PbR share (%)", step=5.0, key="step_first")
            c[1].number_input("Rise a year (points)", step=5.0, key="step_rise")
            c[2].number_input("Most (%)", step=5.0, key="step_max")

        st.markdown("**Tariff weight by LASARS band** (an outcome's price × its band's weight)")
        cols = st.columns(len(BANDS))
        for c, b in zip(cols, BANDS):
            c.number_input(f"{b.replace('_', ' ')} weight", step=0.05, key=f"weight_{b}")

        st.markdown("**Outcome menu** — tariff: a share of the outcome pot (%) priced on the expected volume, "
                    "or pounds per outcome; lags in days")
        widths = [2.2, 1.1, 1.1, 1, 0.8, 0.9, 0.7, 1.4]
        header = st.columns(widths)
        for c, text in zip(header, ["pay for", "pricing", "tariff", "expected a year", "window", "once per",
                                    "lag", "paid"]):
            c.caption(text)
        for row in template.outcomes:
            c = st.columns(widths)
            n = row.name
            c[0].checkbox(f"{n}", key=f"pay_{n}", help=D.MEASURES[row.measure] + (
                f" (kept from the template: {', '.join(row.kept)})" if row.kept else ""))
            c[1].selectbox(f"Pricing for {n}", D.PRICINGS, key=f"pricing_{n}", label_visibility="collapsed")
            c[2].number_input(f"Tariff for {n}", step=1.0, key=f"amount_{n}", label_visibility="collapsed")
            c[3].text_input(f"Expected volume for {n}", key=f"volume_{n}", label_visibility="collapsed")
            c[4].number_input(f"Window for {n} (days)", step=1.0, key=f"window_{n}", label_visibility="collapsed")
            c[5].selectbox(f"Once per for {n}", D.ONCE_PER, key=f"once_{n}", label_visibility="collapsed")
            c[6].number_input(f"Lag for {n} (days)", step=1.0, key=f"lag_{n}", label_visibility="collapsed")
            c[7].selectbox(f"Payment for {n}", D.PAYMENTS, key=f"payment_{n}", label_visibility="collapsed")

        st.markdown("**Offending pot** (Home Office cohort model: paid on recorded offences against the year "
                    "before the contract)")
        c = st.columns([0.8, 1, 1, 1, 1, 1, 1, 1])
        c[0].checkbox("Offending pot", key="offending_on")
        c[1].number_input("Pot (£ a year)", step=10_000.0, key="offending_pot", format="%.0f")
        c[2].number_input("Paid at baseline (%)", step=1.0, key="offending_at_baseline")
        c[3].number_input("All paid at a reduction of (%)", step=0.1, key="offending_full_at")
        c[4].selectbox("Above baseline", D.BELOW_BASELINE, key="offending_below")
        c[5].number_input("£ per offence saved", step=100.0, key="offending_price", format="%.0f")
        c[6].number_input("Offending lag (days)", step=1.0, key="offending_lag")
        c[7].number_input("Baseline offences (a member a year; 0 = the year before)", step=0.01,
                          key="offending_baseline", format="%.3f",
                          help="The tender's forecast of the cohort's recorded offences a year. 0 takes the "
                               "cohort's own in the year before the contract, which needs a settled warm-up.")

        with st.expander("System what-ifs: referrals, staffing and capacity (the site's own values unless "
                         "changed)"):
            c = st.columns(len(D.SYSTEM_FIELDS))
            for col, (key, (label, low, high)) in zip(c, D.SYSTEM_FIELDS.items()):
                col.number_input(label, step=1.0 if "%" in label or "FTE" in label else 1.0, key=f"sys_{key}",
                                 help=f"{low:g} to {high:g}")
        st.markdown("**Caps, collar and lags** (0 = none)")
        c = st.columns(5)
        c[0].number_input("PbR cap (× the year's pot)", step=0.05, key="pbr_cap")
        c[1].number_input("Income floor (% of value)", step=5.0, key="income_floor")
        c[2].number_input("Income cap (% of value)", step=5.0, key="income_cap")
        c[3].number_input("Term cap (£)", step=100_000.0, key="term_cap", format="%.0f")
        c[4].number_input("Year-end reconciliation lag (days)", step=1.0, key="reconciliation_lag")
        submitted = st.form_submit_button("Run", type="primary")

    if submitted:
        form = collected_form(template, years)
        try:
            design = D.build_design(site, form, st.session_state["replications"], st.session_state["seed"],
                                    st.session_state["behaviour"],
                                    {k: st.session_state[f"sys_{k}"] for k in D.SYSTEM_FIELDS})
        except D.DesignError as e:
            st.session_state["run_design"] = None  # nothing of an earlier design is shown as this one's
            st.session_state["run_signature"] = None
            st.error("This design cannot run; nothing was simulated (the fields named are outlined in red):\n\n" +
                     "\n".join(f"- {line}" for line in e.lines))
            st.markdown(D.highlight_css(D.named_fields(e.lines)), unsafe_allow_html=True)
            return
        for line in D.form_warnings(form):
            st.warning(line)
        st.session_state["run_design"] = design
        st.session_state["run_signature"] = form_signature(template, years)
        st.session_state.pop("report_html", None)  # a report of the last design is not this one's
    design = st.session_state.get("run_design")
    st.session_state["_stale"] = design is not None and stale(template, years)
    if design is not None:
        if st.session_state["_stale"]:
            st.warning(STALE)
        shown(lambda: _run(design), "The simulation")


STALE = ("The design has changed since these results were run: press Run to update them. The results shown are "
         "those of the last design run.")


def form_signature(template: D.ContractForm, years: int) -> str:
    """Every value on the design page as it stands (the form's, the site, template and run settings)."""
    keys = sorted({*form_defaults(template), *(f"share_{k}" for k in range(1, years + 1)), "site", "template",
                   "replications", "seed", "behaviour", *(f"sys_{k}" for k in D.SYSTEM_FIELDS)})
    return R.canonical({k: st.session_state.get(k) for k in keys})


def stale(template: D.ContractForm, years: int) -> bool:
    """Whether the page's values differ from those of the design last run."""
    run = st.session_state.get("run_signature")
    return run is not None and run != form_signature(template, years)


def _run(design: D.Design) -> None:
    start = time.perf_counter()
    activity_of(design)
    simulated = time.perf_counter()
    result = settle(design)
    done = time.perf_counter()
    t = result.term
    st.success(f"{design.contract.name} on {design.scenario.name}: {design.replications} replications, mean "
               f"margin {V.money(t['margin'].mean())} over the term — see Results, Compare and Download.")
    again = ("the provider responds to the contract, so a tariff change simulates again; behaviour off re-prices "
             "the cached clients" if design.behaviour != "off" else "cached: a tariff change does not repeat it")
    st.caption(f"Simulation {simulated - start:.1f} s ({again}), settlement {done - simulated:.2f} s.")
    unsettled = design.scenario.horizon.unsettled(design.scenario.name)
    if unsettled:
        st.warning(unsettled[0].upper() + unsettled[1:] + ".")


# --- Results -------------------------------------------------------------------------------------------------


def results_page(design: D.Design) -> None:
    res, act = settle(design), activity_of(design)
    st.subheader(f"Results — {design.contract.name} on {design.scenario.name}")
    st.caption(f"{design.replications} replications 0 to {design.replications - 1} of root seed {design.seed} "
               f"(as pbrsim compare --seed {design.seed}); term totals "
               f"over the observed contract years; mean and 95% confidence interval across replications."
               + (f" The scenario's [uncertainty] applies: replication r carries parameter draw r of its "
                  f"{len(design.scenario.uncertainty)} uncertain values." if design.scenario.uncertainty else ""))
    st.table(V.headline_table(res))
    left, right = st.columns(2)
    left.plotly_chart(V.outcomes_figure(act), key="fig_outcomes")
    right.plotly_chart(V.offending_figure(act, res), key="fig_offending")
    left.plotly_chart(V.income_figure(res), key="fig_income")
    right.plotly_chart(V.cash_figure(res), key="fig_cash")
    st.markdown("**Outcomes per financial year** (mean, 95% CI)")
    st.dataframe(V.outcomes_table(act))
    st.markdown("**Provider income by component per contract year** (mean)")
    st.dataframe(V.income_table(res))
    st.markdown("**What the commissioner spends and buys** (mean, 95% CI)")
    st.dataframe(V.commissioner_table(res))
    c = st.columns(2)
    c[0].markdown("**Outcomes paid for per contract year** (mean number)")
    c[0].dataframe(V.paid_outcomes_table(res))
    c[1].markdown("**Tariff in effect by band** (£ paid per outcome, after caps)")
    c[1].dataframe(V.tariffs_table(res))


# --- Compare -------------------------------------------------------------------------------------------------


def compare_page(design: D.Design) -> None:
    shipped = D.shipped_contracts()
    options = [THIS_DESIGN, *shipped]
    chosen = st.multiselect("Designs to compare (the first is the reference for the differences)", options,
                            default=[THIS_DESIGN, "block"] if "block" in shipped else [THIS_DESIGN],
                            key="compare")
    if not chosen:
        st.info("Choose at least one design.")
        return
    results, refused, designs = [], [], []
    compared = [design.contract if name == THIS_DESIGN else shipped[name] for name in chosen]
    for name in chosen:
        contract = design.contract if name == THIS_DESIGN else shipped[name]
        label = design.contract.name if name == THIS_DESIGN else name
        try:
            D.check(contract, design.scenario, compared_with=compared)  # an uncertain pot: the designs with one
        except D.ConfigError as e:
            refused.append(f"{name}: {e.problems[0][3]}")
            continue
        designs.append(D.for_compare(design, contract))
        results.append(dataclasses.replace(settle(designs[-1]), contract=label))
    for line in refused:
        st.warning(f"Not compared — {line}")
    if not results:
        return
    comp = R.comparison(results)
    st.session_state["comparison"] = comp
    st.subheader(f"Comparison — {design.scenario.name}, {design.replications} replications")
    st.caption("Every design is settled on the same simulated clients" + (
        "" if design.behaviour == "off" else " (each simulated with the provider responding to it, on common "
        "random numbers)") + "; term totals, mean (95% CI)." + (
        " Each replication carries its own draw of the scenario's uncertain values, the same draw for every design "
        "(a contract value such as the offending pot is drawn for the designs that have one)."
        if design.scenario.uncertainty else ""))
    st.markdown("**The money** (pounds over the term)")
    st.table(V.comparison_table(comp))
    st.markdown("**What each design buys** (over the term; people in treatment and waits: the mean of the years)")
    st.table(V.comparison_outcomes_table(comp))
    if design.behaviour != "off":
        st.markdown(f"**What the provider's responses did** (behaviour {design.behaviour}; over the term, mean "
                    "(95% CI); shares of the need bands the assessment gave)")
        st.table(V.gaming_table({r.contract: gaming(*R.simulation_key(d), d) for r, d in zip(results, designs)}))
        st.caption("The figures pbrsim audit-contract reports. For the full audit of a design (behaviour off, base, "
                   "calibrated and stress on the same clients, and the contract features responsible), download its "
                   "files from Download and run: pbrsim audit-contract SCENARIO.toml CONTRACT.toml")
    if len(results) > 1 and comp.outcomes_identical():
        st.info("The provider is contract-blind (behaviour off): every design saw the same clients, so every "
                "outcome is identical by construction and only the money differs. Choose the calibrated "
                "provider (fitted to the national pilot evaluation) to see what each design does to clients.")
    if len(results) > 1:
        st.markdown(f"**Paired differences** against {comp.contracts[0]}, replication by replication (95% CI)")
        st.table(V.differences_table(comp))
        if not comp.outcomes_identical():
            st.markdown(f"**Paired differences in what each design buys** against {comp.contracts[0]} (95% CI)")
            st.table(V.outcome_differences_table(comp))
        c = st.columns(2)
        c[0].plotly_chart(V.differences_figure(comp, "margin"), key="fig_diff_margin")
        c[1].plotly_chart(V.spend_per_exit_figure(comp), key="fig_spend_exit")
        cost_effectiveness(design, comp)
    across_sites(design)


def across_sites(design: D.Design) -> None:
    """This design (contract, replications, seed, provider) on other sites, each with its own system and the
    warm-up it needs: side by side, not paired (different sites are different clients)."""
    sites, _ = D.sites()
    others = {s.file: s for s in sites if s.file != design.site}
    if not others:
        return
    st.markdown("**This design on other sites** (each site's own system, warm-up and calibration as its scenario "
                "file has them; the same contract, replications, seed and provider)")
    chosen = st.multiselect("Sites", list(others), format_func=lambda f: f"{others[f].name} ({f})", key="other_sites")
    if not chosen:
        return
    rows = [dataclasses.replace(settle(design), contract=design.scenario.name)]
    for f in chosen:
        try:
            there = D.on_site(design, others[f])
        except D.DesignError as e:
            st.warning(f"Not run on {f}: " + "; ".join(e.lines))
            continue
        rows.append(dataclasses.replace(settle(there), contract=there.scenario.name))
    comp = R.comparison(rows)
    st.table(V.comparison_table(comp).rename_axis("site"))
    st.table(V.comparison_outcomes_table(comp).rename_axis("site"))
    st.caption("Different sites are different clients and systems: the figures stand side by side, with no paired "
               "differences. Expected volumes are the design's as written (the tender's of the site it was made "
               "for).")


def cost_effectiveness(design: D.Design, comp) -> None:
    """Issue 14's views on the compared designs: incremental cost-effectiveness against the reference, net
    monetary benefit and the chance each design is best at a willingness to pay, its acceptability curves and the
    expected value of perfect information."""
    from sim.experiments.cost_effectiveness import analyse

    st.markdown(f"**Cost-effectiveness and the value of information** against {comp.contracts[0]} (commissioner "
                "spend over the term, assessments included, against what each design buys; paired replications)")
    c = st.columns([1.2, 1, 2])
    outcome = c[0].selectbox("Willingness to pay is for", list(V.OUTCOME_UNITS),
                             format_func=lambda o: f"a {V.OUTCOME_UNITS[o]}", key="ce_outcome")
    wtp = c[1].number_input(f"Willingness to pay (£ per {V.OUTCOME_UNITS[outcome]})", min_value=0.0,
                            max_value=10_000_000.0, value=5_000.0, step=500.0, format="%.0f", key="ce_wtp",
                            help="what the commissioner would pay for one more of the outcome: an illustrative "
                                 "£5,000 to start from (an estimate, no published threshold), 0 to £10m")
    ce = analyse(comp.term, comp.contracts, outcome, [wtp], comp.observed_years())
    left, right = st.columns(2)
    left.table(V.incremental_table(ce))
    left.table(V.net_benefit_view(ce))
    right.plotly_chart(V.acceptability_figure(ce), key="fig_ceac")
    st.caption(V.value_of_information_text(ce, bool(design.scenario.uncertainty)))


# --- Download ------------------------------------------------------------------------------------------------


def download_page(design: D.Design) -> None:
    res, act = settle(design), activity_of(design)
    scenario_name, contract_name = D.scenario_file_name(design), D.contract_file_name(design.contract)
    st.markdown(f"Save both files in one folder. `pbrsim compare {scenario_name} --contracts {contract_name} "
                f"--replications {design.replications} --seed {design.seed}` simulates exactly this page's "
                f"replications: its replication r (r = 0, 1, …) is this page's replication r, and so is row r of "
                f"`pbrsim replicate {scenario_name} -n {design.replications} --seed {design.seed}`.")
    c = st.columns(2)
    c[0].download_button("Scenario (TOML)", D.scenario_toml(design), file_name=scenario_name,
                         mime="application/toml", key="dl_scenario")
    c[1].download_button("Contract (TOML)", D.contract_toml(design), file_name=contract_name,
                         mime="application/toml", key="dl_contract")
    st.markdown("**Result tables (CSV)**, one row per replication")
    tables = {"by_contract_year": res.by_year, "term": res.term, "income_by_component": res.income,
              "commissioner_by_year": res.commissioner, "cash_monthly": res.cash, "paid_outcomes": res.paid,
              "offending_payment": res.offending, "measures_by_year": act.measures,
              "offending_cohort": act.offending}
    comp = st.session_state.get("comparison")
    if comp is not None:
        tables.update({"compare_summary": comp.summary().reset_index(),
                       "compare_paired_differences": comp.paired_differences(), "compare_term": comp.term})
    cols = st.columns(4)
    for i, (name, frame) in enumerate(tables.items()):
        cols[i % 4].download_button(f"{name}.csv", frame.to_csv(index=False), file_name=f"{name}.csv",
                                    mime="text/csv", key=f"dl_{name}", disabled=frame.empty)
    st.markdown("**Tender report** (one HTML file a councillor can read: pbrsim report on the Compare page's "
                "designs)")
    if comp is None:
        st.caption("Open the Compare page first: the report covers the designs compared there.")
    elif st.button("Prepare the tender report", key="prepare_report"):
        st.session_state["report_html"] = tender_report(design, comp)
    if st.session_state.get("report_html"):
        st.download_button("Tender report (HTML)", st.session_state["report_html"],
                           file_name=f"{design.contract.name}_tender_report.html", mime="text/html",
                           key="dl_report")


def tender_report(design: D.Design, comp) -> str:
    """The Compare page's comparison as ``pbrsim report`` writes it, built in a temporary folder."""
    import tempfile
    from pathlib import Path

    from sim.report.output import write_comparison
    from sim.report.tender import ComparisonFolder, report_html

    shipped = D.shipped_contracts()
    contracts = [design.contract if name == design.contract.name else shipped[name] for name in comp.contracts
                 if name == design.contract.name or name in shipped]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "compare"
        write_comparison(comp, folder, with_plots=True, scenario=design.scenario, contracts=contracts)
        return report_html(ComparisonFolder(folder))


# --- About --------------------------------------------------------------------------------------------------


def about_page() -> None:
    """The model, its assumptions and limits, sources, citation, licence and change log, from the files."""
    page = st.radio("About", list(D.ABOUT), horizontal=True, key="about", label_visibility="collapsed")
    text, markdown = D.about_text(page)
    if markdown:
        st.markdown(text)
    else:
        st.code(text, language="yaml" if page == "Citation" else None)


# --- the page ------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="pbrsim: contract designer", layout="wide")

    st.title("Payment-by-results contract designer")
    st.caption("Simulated drug and alcohol treatment systems (pbrsim): what a contract design buys, what it costs, "
               "and what it risks for the provider.")
    tabs = st.tabs(["Design a contract", "Results", "Compare", "Download", "About"])
    with tabs[4]:
        shown(about_page, "The About page")
    with tabs[0]:
        shown(design_page, "The design form")
    current = st.session_state.get("run_design")
    changed = st.session_state.get("_stale", False)
    for tab, page, what in ((tabs[1], results_page, "Results"), (tabs[2], compare_page, "Comparison"),
                            (tabs[3], download_page, "Downloads")):
        with tab:
            if current is None:
                st.info("Design a contract and press Run: results appear here." + (
                    " The last design was refused: see the Design page." if "run_signature" in st.session_state
                    and st.session_state["run_signature"] is None else ""))
            else:
                if changed:
                    st.warning(STALE)
                shown(lambda page=page: page(current), what)


# Streamlit runs this file as __main__; worker processes (spawn) import it as __mp_main__ and must not draw.
if __name__ == "__main__":
    main()

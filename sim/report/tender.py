"""The tender report: one self-contained HTML file a councillor can read, from a ``pbrsim compare`` folder.

``pbrsim report RESULTS_DIR`` reads what ``pbrsim compare`` wrote (its tables, plots, ``inputs/`` and manifest;
the cost-effectiveness tables when it ran with ``--wtp``; an ``audit_<design>`` folder of ``pbrsim
audit-contract`` beside it, if there is one) and writes ``report.html``: a plain-English summary, a card per
design, outcomes and money per contract year with uncertainty, the provider's risk, what each design invites,
cost-effectiveness and the value of information, the assumptions and the source of every default, a STRESS-DES
section (Monks et al. 2019, *Journal of Simulation* 13(1):55-67) generated from the run, and the run manifest.
Everything is inside the file (styles, images as data URIs): it opens offline and makes no request. With a
headless Chromium on the machine it also prints ``report.pdf``. Nothing is simulated here.
"""

from __future__ import annotations

import base64
import html
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sim.core.errors import UserError
from sim.core.provenance import manifest_text
from sim.experiments.statistics import mean_ci
from sim.report.sources import TAGS, sourced_values, tag_counts

YEARLY = [("spend", "commissioner spend (£)"), ("income", "provider income (£)"), ("margin", "provider margin (£)"),
          ("starts", "treatment starts"), ("in_treatment", "people in treatment"),
          ("planned_exits", "planned exits"), ("sustained_recoveries", "sustained recoveries"),
          ("recorded_offences", "recorded offences"), ("deaths", "deaths")]
PLOTS = [("cost_per_outcome.png", "Spend per planned exit, by design"),
         ("paired_spend.png", "Paired differences in spend against the reference design"),
         ("paired_margin.png", "Paired differences in the provider's margin"),
         ("cost_effectiveness_plane.png", "Cost-effectiveness plane"),
         ("acceptability.png", "Acceptability curves"),
         ("value_of_information.png", "Expected value of perfect information"),
         ("evppi.png", "Partial value of information by parameter")]
CSS = """
body{font-family:Georgia,serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.9em;margin-bottom:.2em} h2{border-bottom:2px solid #2a6f97;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em;font-family:Helvetica,Arial,sans-serif}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right;vertical-align:top} th{background:#eef4f8}
td.text,th.text{text-align:left} .cards{display:flex;flex-wrap:wrap;gap:1em}
.card{border:1px solid #9bb;border-radius:6px;padding:.8em 1em;flex:1 1 300px;background:#fafcfd}
.card h3{margin:.1em 0 .4em} .muted{color:#666;font-size:.9em} .warn{background:#fff4e0;padding:.6em 1em;
border-left:4px solid #e8a33d} figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555} details{margin:.6em 0} summary{cursor:pointer;font-weight:bold}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def pounds(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"−£{-x:,.0f}" if round(x) < 0 else f"£{x:,.0f}"


def _number(x, digits: int = 0) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.{digits}f}"


def _table(frame: pd.DataFrame, text_columns=()) -> str:
    head = "".join(f'<th class="{"text" if c in text_columns or i == 0 else ""}">{_esc(c)}</th>'
                   for i, c in enumerate(frame.columns))
    body = "".join("<tr>" + "".join(f'<td class="{"text" if c in text_columns or i == 0 else ""}">{_esc(v)}</td>'
                                    for i, (c, v) in enumerate(row.items())) + "</tr>"
                   for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _with_ci(values: np.ndarray, money: bool) -> str:
    s = mean_ci(values)
    fmt = pounds if money else _number
    if not np.isfinite(s.half_width):
        return fmt(s.mean)
    return f"{fmt(s.mean)} ({fmt(s.ci_low)} to {fmt(s.ci_high)})"


# --- reading a comparison -----------------------------------------------------------------------------------------


class ComparisonFolder:
    """What ``pbrsim compare`` left in a folder, read once."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder)
        needed = ("summary.csv", "by_year.csv", "term.csv", "manifest.json")
        if not self.path.is_dir():
            raise UserError(f"{self.path} is not a folder: give the folder pbrsim compare wrote "
                            f"(results/<scenario>/compare)")
        missing = [n for n in needed if not (self.path / n).is_file()]
        if missing:
            raise UserError(f"{self.path} is not a pbrsim compare folder: it has no {', '.join(missing)} (run "
                            f"pbrsim compare SCENARIO --contracts ... first)")
        self.manifest = json.loads((self.path / "manifest.json").read_text())
        if self.manifest.get("kind") != "compare":
            raise UserError(f"{self.path} was written by pbrsim {self.manifest.get('kind')}, not by pbrsim compare")
        self.summary = pd.read_csv(self.path / "summary.csv", index_col=0)
        self.by_year = pd.read_csv(self.path / "by_year.csv")
        self.term = pd.read_csv(self.path / "term.csv")
        self.designs = list(self.summary.index)
        self.optional = {name: pd.read_csv(self.path / f"{name}.csv") for name in (
            "paired_differences", "offending", "cost_effectiveness", "net_benefit", "value_of_information",
            "evppi", "parameters", "fingerprints") if (self.path / f"{name}.csv").is_file()}
        inputs = self.path / "inputs"
        self.scenario = json.loads((inputs / "scenario.json").read_text()) if (inputs / "scenario.json").is_file() \
            else {}
        self.contracts = {d: json.loads((inputs / f"contract_{d}.json").read_text()) for d in self.designs
                          if (inputs / f"contract_{d}.json").is_file()}

    def input_files(self) -> list[tuple[str, Path | None]]:
        """(role, file on this machine, or None) of each input the manifest names."""
        out = []
        for role, record in (self.manifest.get("inputs") or {}).items():
            for r in record if isinstance(record, list) else [record]:
                candidates = [Path(r[k]) for k in ("path", "file") if r.get(k)]
                found = next((c for c in candidates if c.is_file()), None)
                out.append((role, found))
        return out

    def audits(self) -> dict[str, Path]:
        """The ``pbrsim audit-contract`` folders beside the comparison, by design."""
        return {d: self.path.parent / f"audit_{d}" for d in self.designs
                if (self.path.parent / f"audit_{d}" / "mechanism_summary.csv").is_file()}

    def outcomes_identical(self) -> bool:
        prints = self.optional.get("fingerprints")
        return prints is not None and bool((prints.groupby("replication")["history"].nunique() == 1).all())


# --- sections -----------------------------------------------------------------------------------------------------


def summary_section(c: ComparisonFolder) -> str:
    s, n = c.summary, int(c.summary["replications"].iloc[0])
    provider = c.manifest.get("provider") or c.scenario.get("behaviour", {}).get("mode")
    ref = c.designs[0]
    name = c.scenario.get("name") or c.manifest.get("inputs", {}).get("scenario", {}).get("file", "the scenario")
    params = c.optional.get("parameters")
    draws = c.manifest.get("parameter_draws") or (int(params["draw"].nunique()) if params is not None else 0)
    lines = [f"This report compares {len(c.designs)} contract designs for <b>{_esc(name)}</b> over "
             f"{_esc(_years(c))} contract years, on {n} paired simulations of the same clients"
             + (f" and {draws} draws of the uncertain parameters" if draws else "") + "."]
    if c.outcomes_identical():
        lines.append("The provider was modelled as <b>contract-blind</b>: it delivers the same service whatever the "
                     "contract, so every design buys the same outcomes and only the money differs. Rerun with "
                     "<code>--provider calibrated</code> to see how a provider fitted to the national pilot "
                     "evaluation would respond.")
    else:
        lines.append("The provider <b>responds to each design</b>"
                     + (f" (behaviour <code>{_esc(provider)}</code>)" if provider else "")
                     + ": the designs differ in what they buy as well as in what they cost.")
    if "spend_per_sustained_recovery" in s.columns and s["spend_per_sustained_recovery"].notna().any():
        best = s["spend_per_sustained_recovery"].idxmin()
        others = ", ".join(f"{pounds(s.loc[d, 'spend_per_sustained_recovery'])} under {_esc(d)}"
                           for d in c.designs if d != best)
        lines.append(f"The lowest spend per sustained recovery is under <b>{_esc(best)}</b> "
                     f"({pounds(s.loc[best, 'spend_per_sustained_recovery'])}"
                     + (f"; {others}" if others else "") + ").")
    cheapest = s["spend"].idxmin()
    lines.append(f"The commissioner spends least under <b>{_esc(cheapest)}</b>: {pounds(s.loc[cheapest, 'spend'])} "
                 f"over the term on average.")
    risky = s["probability_of_loss"].idxmax()
    lines.append(f"The provider's risk of a loss over the term is greatest under <b>{_esc(risky)}</b> (a loss in "
                 f"{_esc(s.loc[risky, 'losses'])} simulations; 5th-percentile margin "
                 f"{pounds(s.loc[risky, 'margin_p5'])}), and it would need up to "
                 f"{pounds(s['working_capital_needed'].max())} of working capital on average under the most "
                 f"demanding design.")
    voi = c.optional.get("value_of_information")
    if voi is not None and len(voi[voi["asked"]]):
        asked = voi[voi["asked"]]
        lines.append(f"The expected value of perfect information on the choice is "
                     f"{pounds(asked['evpi_per_year'].max())} a contract year at most over the willingness-to-pay "
                     f"values asked: " + ("nothing worth paying for, the best design is the same in every "
                                          "simulation." if asked["evpi"].max() < 1 else
                                          "what further research on the parameters could be worth."))
    if n < 20:
        lines.append(f'<div class="warn">Only {n} simulations: treat these figures as indicative. A decision '
                     f"should rest on 20 or more (pbrsim compare -n 40).</div>")
    return "<h2>Summary</h2>" + "".join(f"<p>{x}</p>" for x in lines)


def _years(c: ComparisonFolder) -> int:
    observed = c.by_year[c.by_year["observed"].astype(bool)]
    return int(observed.groupby(["replication", "contract"])["contract_year"].nunique().min()) if len(observed) else 0


def _share_text(share: dict) -> str:
    if share.get("by_year"):
        return " / ".join(f"{v:.0%}" for v in share["by_year"]) + " by contract year"
    if share.get("linear"):
        a, b = share["linear"]
        return f"{a:.0%} rising linearly to {b:.0%}"
    if share.get("step"):
        a, rise, top = share["step"]
        return f"{a:.0%}, rising {rise:.0%} a year to {top:.0%}"
    return "n/a"


def cards_section(c: ComparisonFolder) -> str:
    cards = []
    for d in c.designs:
        k = c.contracts.get(d, {})
        items = []
        if k:
            items.append(f"Contract value {pounds(k.get('annual_value', math.nan))} a year for "
                         f"{k.get('term_years')} years" + (f" (+{k['extension_years']} optional)"
                                                           if k.get("extension_years") else ""))
            items.append("Share paid on outcomes: " + _share_text(k.get("pbr_share") or {}))
            outcomes = k.get("outcomes") or {}
            if outcomes:
                items.append("Outcomes paid: " + ", ".join(f"{_esc(n.replace('_', ' '))} {o.get('share_of_pot', 0):.0%}"
                                                           for n, o in outcomes.items()))
            if k.get("offending"):
                items.append(f"Offending pot {pounds(k['offending'].get('pot', math.nan))} a year")
            if k.get("investor"):
                items.append("Financed by a social investor (social impact bond)")
        s = c.summary.loc[d]
        items.append(f"Loss over the term in {_esc(s['losses'])} simulations")
        cards.append(f'<div class="card"><h3>{_esc(d)}</h3><p>{_esc(k.get("description") or "(no description)")}'
                     f'</p><ul>' + "".join(f"<li>{i}</li>" for i in items) + "</ul></div>")
    return "<h2>The designs</h2><div class=\"cards\">" + "".join(cards) + "</div>"


def yearly_section(c: ComparisonFolder) -> str:
    observed = c.by_year[c.by_year["observed"].astype(bool)]
    parts = ["<h2>Outcomes and money, year by year</h2><p class=\"muted\">Mean over simulations, with the 95% "
             "confidence interval of the mean in brackets. Spend includes the independent assessments. Sustained "
             "recoveries in the last year are not all observable yet (the 6-month follow-up runs past the term).</p>"]
    for metric, label in YEARLY:
        if metric not in observed.columns:
            continue
        table = observed.pivot_table(index="contract", columns="contract_year", values=metric,
                                     aggfunc=lambda v: _with_ci(np.asarray(v, float), "£" in label), sort=False)
        table = table.reindex(c.designs)
        table.columns = [f"year {y}" for y in table.columns]
        parts.append(f"<h3>{_esc(label)}</h3>" + _table(table.reset_index().rename(columns={"contract": "design"})))
    return "".join(parts)


def risk_section(c: ComparisonFolder) -> str:
    s = c.summary
    rows = pd.DataFrame({"design": s.index, "loss over the term": s["losses"],
                         "mean margin": [f"{pounds(m)} ({pounds(lo)} to {pounds(hi)})" for m, lo, hi in
                                         zip(s["margin"], s["margin_ci_low"], s["margin_ci_high"])],
                         "5th-percentile margin": s["margin_p5"].map(pounds),
                         "working capital needed": s["working_capital_needed"].map(pounds)})
    text = ("<p>A loss over the term is counted in simulations, said with its resolution: \"under 1 in 20\" means "
            "none of 20 simulations lost money, not that a loss is impossible. Working capital is the deepest the "
            "provider's cash falls before outcome payments arrive.</p>")
    lottery = c.optional.get("offending")
    if lottery is not None and len(lottery):
        shown = pd.DataFrame({"design": lottery["contract"], "contract year": lottery["contract_year"],
                              "mean payment": lottery["mean_payment"].map(pounds),
                              "mean share of the pot paid": lottery["mean_share_paid"].map("{:.0%}".format),
                              "pays nothing": lottery["pays_nothing"].map("{:.0%}".format),
                              "pays in full": lottery["pays_in_full"].map("{:.0%}".format)})
        text += ("<p>The offending pot is paid on the cohort's recorded offences against a baseline: per contract "
                 "year, the mean payment and the share of simulations in which it pays nothing and in full.</p>"
                 + _table(shown))
    return "<h2>The provider's risk</h2>" + _table(rows) + text


def audit_section(c: ComparisonFolder) -> str:
    audits = c.audits()
    head = "<h2>What each design invites</h2>"
    if not audits:
        return head + ("<p>No audit of provider behaviour was found beside this comparison. "
                       "<code>pbrsim audit-contract SCENARIO CONTRACT</code> measures how strongly each gaming "
                       "mechanism (cream-skimming, parking, misrecording, discharge timing, band drift, cash cuts) "
                       "acts under a design; run it with <code>--out</code> set to "
                       f"<code>{_esc(c.path.parent)}/audit_&lt;design&gt;</code> and rerun this report.</p>")
    parts = [head]
    for d, folder in audits.items():
        m = pd.read_csv(folder / "mechanism_summary.csv")
        parts.append(f"<h3>{_esc(d)}</h3>" + _table(m.round(4)))
    return "".join(parts)


def economics_section(c: ComparisonFolder) -> str:
    parts = ["<h2>Cost-effectiveness and the value of information</h2>"]
    ce, nb = c.optional.get("cost_effectiveness"), c.optional.get("net_benefit")
    if ce is None:
        parts.append("<p>Not computed: rerun <code>pbrsim compare</code> with <code>--wtp</code> (a willingness to "
                     "pay per outcome, in pounds) for the incremental analysis, net benefit, acceptability and "
                     "the value of information.</p>")
    else:
        outcome = c.manifest.get("outcome") or (ce["outcome"].iloc[0] if len(ce) else "")
        parts.append(f"<p>Against {_esc(c.designs[0])}, per extra {_esc(str(outcome).replace('_', ' '))}: the mean "
                     "extra spend and extra outcome (paired, 95% CI) and their ratio.</p>")
        shown = ce[["contract", "extra_spend", "extra_outcome", "icer", "verdict"]].copy()
        shown["extra_spend"] = shown["extra_spend"].map(pounds)
        shown["extra_outcome"] = shown["extra_outcome"].map(lambda v: _number(v, 1))
        shown["icer"] = shown["icer"].map(pounds)
        shown.columns = ["design", "extra spend", "extra outcome", "extra spend per extra outcome (ICER)", "verdict"]
        parts.append(_table(shown, text_columns=("verdict",)))
        if nb is not None:
            t = nb[["wtp", "contract", "net_benefit", "incremental_net_benefit", "best_in"]].copy()
            for col in ("wtp", "net_benefit", "incremental_net_benefit"):
                t[col] = t[col].map(pounds)
            t.columns = ["willingness to pay", "design", "net benefit", f"against {c.designs[0]}",
                         "best in (simulations)"]
            parts.append("<h3>Net monetary benefit</h3><p class=\"muted\">Willingness to pay times the outcomes, "
                         "less spend, over the term.</p>"
                         + _table(t, text_columns=("design", "best in (simulations)")))
        voi = c.optional.get("value_of_information")
        if voi is not None:
            asked = voi[voi["asked"]][["wtp", "evpi", "evpi_per_year", "draws"]].copy()
            for col in ("wtp", "evpi", "evpi_per_year"):
                asked[col] = asked[col].map(pounds)
            asked.columns = ["willingness to pay", "EVPI over the term", "EVPI a contract year", "parameter draws"]
            parts.append("<h3>Expected value of perfect information (EVPI)</h3>" + _table(asked))
        evppi = c.optional.get("evppi")
        if evppi is not None and evppi["evppi"].notna().any():
            wide = evppi.pivot_table(index="group", columns="wtp", values="evppi_per_year", sort=False)
            wide.columns = [f"£{w:,.0f}" for w in wide.columns]
            parts.append("<h3>Partial EVPI per contract year (Strong, Oakley &amp; Brennan 2014)</h3>"
                         + _table(wide.map(pounds).reset_index()))
    return "".join(parts)


def figures_section(c: ComparisonFolder) -> str:
    figs = [_image(c.path / name, caption) for name, caption in PLOTS if (c.path / name).is_file()]
    return "<h2>Figures</h2>" + "".join(figs) if figs else ""


def sources_section(c: ComparisonFolder) -> str:
    parts = ["<h2>Assumptions and the source of every default</h2><p>Each number in the files run carries a tag: "
             + "; ".join(f"<b>[{t}]</b> {_esc(m)}" for t, m in TAGS.items()) + ". Cite the original source of "
             "each [P] figure you rely on, say which are estimates, and cite pbrsim with its version "
             "(CITATION.cff).</p>"]
    files = c.input_files()
    if not files:
        return parts[0] + "<p>The manifest names no input files.</p>"
    for role, path in files:
        if path is None:
            parts.append(f"<p>{_esc(role)}: the file is not on this machine; its hash is in the manifest.</p>")
            continue
        table = sourced_values(path)
        counts = tag_counts(table)
        summary = ", ".join(f"{counts[t]} [{t}]" for t in TAGS) + f", {counts['none']} without a tag"
        parts.append(f"<details><summary>{_esc(role)}: {_esc(path.name)} — {len(table)} values: {summary}"
                     "</summary>" + _table(table[["key", "value", "tags", "note"]],
                                           text_columns=("key", "value", "tags", "note")) + "</details>")
    return "".join(parts)


def stress_section(c: ComparisonFolder) -> str:
    m, sc = c.manifest, c.scenario
    horizon = sc.get("horizon", {})
    n = int(c.summary["replications"].iloc[0])
    rows = [
        ("1.1 Purpose", "To compare contract designs for a drug and alcohol treatment service before tendering: "
                        "the outcomes each buys, the commissioner's spend and the provider's financial risk."),
        ("2.1 Base model", "A discrete-event simulation (SimPy) of clients through referral, independent "
                           "assessment (banding by need), structured treatment, community and inpatient detox, "
                           "residential rehab, mutual aid, exit, relapse and re-presentation; contracts settled on "
                           "the simulated records (README, The model)."),
        ("2.2 Scenario", f"{sc.get('name', '?')}: {sc.get('description', '')}"),
        ("2.4 Provider behaviour", "contract-blind (the same service under every design)" if c.outcomes_identical()
         else f"responding to each design (mode {m.get('provider')})"),
        ("3.1 Data sources", "Every default's source tag is listed in the section above; full references in "
                             "the repository's reference notes."),
        ("4.1 Initialisation", f"warm-up of {horizon.get('warmup_years', '?')} years from an empty system before the "
                               f"contract start {horizon.get('contract_start', '?')} (chosen by MSER-5: pbrsim "
                               f"warmup)"),
        ("4.2 Run length", f"{horizon.get('years', '?')} reported years; {_years(c)} contract years observed"),
        ("4.3 Estimation", f"{n} replications on common random numbers (root seed {m.get('seed')}; replication r "
                           f"uses SeedSequence(seed, spawn_key=(r,)))"
                           + (f"; {m['parameter_draws']} parameter draws, {m.get('runs_per_draw', 1)} run(s) each"
                              if m.get("parameter_draws") else "")
                           + "; 95% t-intervals of means, percentile uncertainty intervals, bootstrap intervals "
                             "of ratios"),
        ("5.1 Software", f"pbrsim {m.get('pbrsim')}, Python {m.get('python')}, "
                         + ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)),
        ("5.2 Random sampling", "one random stream per decision point, keyed by a stable client id (numpy PCG64)"),
        ("5.3 Model execution", f"{' '.join(m['command']) if m.get('command') else 'from Python'}; machine "
                                f"{(m.get('machine') or {}).get('platform', '?')}, "
                                f"{(m.get('machine') or {}).get('cpus', '?')} CPUs"),
        ("5.4 System specification", f"started {m.get('started')}, written {m.get('written')}"),
        ("6.1 Code access", "open source: the repository named in CITATION.cff, at git "
                            + (m["git"]["commit"] if isinstance(m.get("git"), dict) else str(m.get("git")))),
    ]
    return ("<h2>Reporting checklist (STRESS-DES)</h2><p class=\"muted\">The Strengthening the Reporting of "
            "Empirical Simulation Studies items (Monks et al. 2019), filled in from this run.</p>"
            + _table(pd.DataFrame(rows, columns=["item", "this study"]), text_columns=("item", "this study")))


def manifest_section(c: ComparisonFolder) -> str:
    return ("<h2>Run manifest</h2><pre>" + _esc(manifest_text(c.manifest)) + "</pre><details><summary>manifest."
            "json</summary><pre>" + _esc(json.dumps(c.manifest, indent=2)) + "</pre></details>")


def report_html(c: ComparisonFolder) -> str:
    title = f"Contract designs for {c.scenario.get('name', 'the service')}: tender report"
    body = "".join(section(c) for section in (summary_section, cards_section, yearly_section, risk_section,
                                               audit_section, economics_section, figures_section, sources_section,
                                               stress_section, manifest_section))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head>"
            f"<body><h1>{_esc(title)}</h1><p class=\"muted\">pbrsim {_esc(c.manifest.get('pbrsim'))}, from "
            f"{_esc(c.path)}; written {_esc(c.manifest.get('written'))}.</p>{body}</body></html>")


def chromium() -> str | None:
    """A headless-capable Chromium on this machine, if any."""
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p),
                None)


def write_report(folder: str | Path, out: str | Path | None = None, pdf: bool = True) -> tuple[Path, Path | None]:
    """Write the report of the comparison in ``folder`` to ``out`` (default ``folder/report.html``), whole or not
    at all, and ``report.pdf`` beside it when ``pdf`` and a Chromium is installed. Returns both paths (the PDF's
    None when none was written)."""
    from sim.engine.history import write_atomic

    c = ComparisonFolder(folder)
    target = Path(out) if out is not None else c.path / "report.html"
    text = report_html(c)
    write_atomic(target, lambda p: Path(p).write_text(text, encoding="utf-8"))
    browser = chromium() if pdf else None
    if browser is None:
        return target, None
    pdf_path = target.with_suffix(".pdf")
    with tempfile.TemporaryDirectory() as profile:
        tmp = pdf_path.with_name(f".{pdf_path.name}.part")
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                               f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                               target.resolve().as_uri()], capture_output=True, timeout=180)
        if done.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            return target, None
        tmp.replace(pdf_path)
    return target, pdf_path

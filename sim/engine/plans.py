"""Episode plans: everything about an episode that does not depend on a queue, computed for a batch at once.

An episode's booking delay, assessment time, need domains and band, attendance, start delay and patience,
modality, mutual aid, the competing clocks to planned exit, drop-out, transfer and custody (measured from the
start), its detox and rehab plan, custody sentence, and what follows each possible exit (relapse,
re-presentation, training), and the unit exponentials its death times are made from, are pure functions of the
client's keyed uniforms (:func:`sim.core.randomness.episode_draws`), group, band, criminal-justice involvement
and the parameters in force. :class:`Planner` computes them for many episodes at once with numpy, one
vectorised quantile call per distinct parameter entry per batch; the SimPy processes of
:mod:`sim.engine.system` then only wait for places and planned times, and read their plan (a list of floats
indexed by the column constants below).

The parameters in force are those of an epoch (:meth:`sim.config.scenario.Scenario.epochs`): the assessment
columns use the epoch in force at referral, the rest the epoch passed as ``epoch`` (the engine asks again for
an episode's plan, under the epoch then in force, when a stage begins in a later epoch). A band given with
``band`` (a provider's band drift) replaces the assessed band for the columns that depend on it.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.randomness import EPISODE_LAYOUT, EPISODE_WIDTH, PROVIDER_LAYOUT, ClientRandom, Stream, episode_draws
from sim.core.vocabulary import BANDS, GROUPS, SOURCES

N_BANDS = len(BANDS)
CJ_SOURCES = np.array([s in ("arrest_referral", "court_order", "prison_release") for s in SOURCES])

# Plan columns. Times are offsets (days unless named in weeks or as a unit exponential), flags are 0.0 / 1.0,
# ``unplanned_exit`` an index into ``vocabulary.UNPLANNED_EXITS``.
# ``arrest_offences``: how many offences out of treatment (at the client's untreated rate) until one is recorded
# and leads to a criminal-justice referral back into treatment; the engine turns it into a time with the
# client's offending rate in the state they are in.
COLUMNS = (
    # assessment (epoch at referral)
    "booking_days", "assessment_days", "dependency", "wider_needs", "band", "attends", "drift_u",
    # waiting for treatment
    "start_delay_days", "patience_days",
    # the start of treatment
    "modality", "mutual_aid", "completion_weeks", "abstinent_weeks", "min_abstinence_weeks", "drop_hazard",
    "drop_e", "unplanned_exit", "transfer_days", "custody_days",
    # mortality: hazards per day, the raised ratio and its length, unit exponentials by decision (0-6)
    "h_treatment", "h_recovered", "h_out", "post_exit_ratio", "post_exit_days",
    "e0", "e1", "e2", "e3", "e4", "e5", "e6",
    # detox and rehab inside the episode
    "cdetox", "cdetox_at_weeks", "cdetox_days", "cdetox_done",
    "idetox", "idetox_at_weeks", "idetox_days", "idetox_done", "idetox_patience_days",
    "rehab", "rehab_at_weeks", "rehab_weeks", "rehab_outcome", "rehab_drop_weeks", "rehab_patience_days",
    "aftercare_weeks", "aftercare_drop_ratio",
    # custody
    "sentence_weeks", "represents_on_release",
    # after exit
    "relapse_u", "relapse_days", "represents_after_relapse", "represent_delay_weeks", "disengaged_days",
    "arrest_offences", "signposted_days", "signposted_mutual_aid", "training", "training_weeks",
)
(BOOKING_DAYS, ASSESSMENT_DAYS, DEPENDENCY, WIDER_NEEDS, BAND, ATTENDS, DRIFT_U, START_DELAY_DAYS, PATIENCE_DAYS,
 MODALITY, MUTUAL_AID, COMPLETION_WEEKS, ABSTINENT_WEEKS, MIN_ABSTINENCE_WEEKS, DROP_HAZARD, DROP_E, UNPLANNED_EXIT,
 TRANSFER_DAYS, CUSTODY_DAYS, H_TREATMENT, H_RECOVERED, H_OUT, POST_EXIT_RATIO, POST_EXIT_DAYS, E0, E1, E2, E3, E4,
 E5, E6, CDETOX, CDETOX_AT_WEEKS, CDETOX_DAYS, CDETOX_DONE, IDETOX, IDETOX_AT_WEEKS, IDETOX_DAYS, IDETOX_DONE,
 IDETOX_PATIENCE_DAYS, REHAB, REHAB_AT_WEEKS, REHAB_WEEKS, REHAB_OUTCOME, REHAB_DROP_WEEKS, REHAB_PATIENCE_DAYS,
 AFTERCARE_WEEKS, AFTERCARE_DROP_RATIO, SENTENCE_WEEKS, REPRESENTS_ON_RELEASE, RELAPSE_U, RELAPSE_DAYS,
 REPRESENTS_AFTER_RELAPSE, REPRESENT_DELAY_WEEKS, DISENGAGED_DAYS, ARREST_OFFENCES, SIGNPOSTED_DAYS,
 SIGNPOSTED_MUTUAL_AID, TRAINING, TRAINING_WEEKS) = range(60)
WIDTH = len(COLUMNS)

# Columns appended when a provider responds (sim.engine.provider): its belief shock about the client (a standard
# normal), the uniforms of its decisions (drawn against the probability it gives, when it is asked), and how near
# the band-setting domain score lies to the next more severe band (M6, ``threshold_distance``)
PROVIDER_COLUMNS = ("belief_z", "intake_u", "deflection_u", "deflection_delay_u", "parking_u", "discharge_u",
                    "caution_u", "caution_weeks_u", "held_decline_u", "band_drift_u", "recode_u", "re_entry_u",
                    "drift_distance")
(BELIEF_Z, INTAKE_U, DEFLECTION_U, DEFLECTION_DELAY_U, PARKING_U, DISCHARGE_U, CAUTION_U, CAUTION_WEEKS_U,
 HELD_DECLINE_U, BAND_DRIFT_U, RECODE_U, RE_ENTRY_U, DRIFT_DISTANCE) = range(WIDTH, WIDTH + len(PROVIDER_COLUMNS))

# Client attributes at first referral (epoch at arrival), computed with the first episode's plan
ATTRIBUTES = ("male", "age", "injecting", "dual_diagnosis", "housing_problem", "criminal_justice", "offending_rate")


def _exp(u: np.ndarray) -> np.ndarray:
    """Unit exponentials by inversion."""
    return -np.log1p(-u)


def _after(e: np.ndarray, hazard: np.ndarray) -> np.ndarray:
    """Time to an event with a constant hazard from its unit exponential (inf for a zero hazard)."""
    return np.divide(e, hazard, out=np.full(len(e), np.inf), where=hazard > 0)


def _unplanned_exit(u: np.ndarray, declined: np.ndarray, withdrawn: np.ndarray) -> np.ndarray:
    """How an exit on the drop-out clock is recorded, as an index into ``UNPLANNED_EXITS`` (dropped out,
    declined, withdrawn): one uniform split in that order, so that the declined share alone decides who
    declines."""
    return np.where(u < declined, 1.0, np.where(u < declined + withdrawn, 2.0, 0.0))


def _quantiles(entries: list):
    """A vectorised quantile function ``f(u, cell)`` over the distributions of ``entries`` (one per cell): one
    formula with each row's parameters where they share a family (the formulas of ``Dist.ppf``), else one call
    per distinct entry. A share for whom the event never comes (``never``) maps the highest uniforms to inf."""
    never = np.array([e.never or 0.0 for e in entries])
    if never.any():
        f = _quantiles([e._without_never() if e.never else e for e in entries])

        def with_never(u, cell):
            rest = 1.0 - never[cell]
            v = np.divide(u, rest, out=np.full(len(u), 2.0), where=rest > 0)
            return np.where(v < 1.0, f(np.where(v < 1.0, v, 0.5), cell), np.inf)
        return with_never
    unique = list({id(e): e for e in entries}.values())
    families = {e.dist for e in unique}
    family = families.pop() if len(families) == 1 else None
    lo = np.array([-np.inf if e.min is None else e.min for e in entries])
    hi = np.array([np.inf if e.max is None else e.max for e in entries])
    single = len(unique) == 1

    def params(*names):
        arrays = [np.array([float(getattr(e, k)) for e in entries]) for k in names]
        return [float(a[0]) for a in arrays] if single else arrays

    if family == "lognormal":
        a, b = params("median", "sigma")
        f = (lambda u, cell: a * np.exp(b * special.ndtri(u))) if single else \
            (lambda u, cell: a[cell] * np.exp(b[cell] * special.ndtri(u)))
    elif family == "exponential":
        (a,) = params("mean")
        f = (lambda u, cell: -a * np.log1p(-u)) if single else (lambda u, cell: -a[cell] * np.log1p(-u))
    elif family == "weibull":
        a, b = params("scale", "shape")
        b = 1.0 / b
        f = (lambda u, cell: a * (-np.log1p(-u)) ** b) if single else \
            (lambda u, cell: a[cell] * (-np.log1p(-u)) ** b[cell])
    elif family == "gamma":
        a, b = params("shape", "mean")
        b = b / a
        f = (lambda u, cell: special.gammaincinv(a, u) * b) if single else \
            (lambda u, cell: special.gammaincinv(a[cell], u) * b[cell])
    elif family == "fixed":
        (a,) = params("value")
        f = (lambda u, cell: np.full(len(u), a)) if single else (lambda u, cell: a[cell] + 0.0 * u)
    elif single:
        only = unique[0]
        return lambda u, cell: np.asarray(only.ppf(u), dtype=float).reshape(u.shape)
    else:
        index = np.array([next(j for j, x in enumerate(unique) if x is e) for e in entries])

        def by_entry(u, cell):
            which, out = index[cell], np.empty(len(u))
            for j, entry in enumerate(unique):
                m = which == j
                if m.any():
                    out[m] = entry.ppf(u[m])
            return out
        return by_entry
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return f
    if single:
        low, high = (None if e is None else e for e in (unique[0].min, unique[0].max))
        return lambda u, cell: np.clip(f(u, cell), low, high)
    return lambda u, cell: np.clip(f(u, cell), lo[cell], hi[cell])


class _Tables:
    """One epoch's parameters arranged for vectorised lookups by cell: ``g * N_BANDS + b`` (``banded``), or
    the group alone (parameters resolved before assessment)."""

    def __init__(self, sc: Scenario):
        self.sc = sc
        self._cache: dict = {}

    def _cells(self, param, banded: bool) -> list:
        return [param.at(g, b) for g in range(len(GROUPS)) for b in range(N_BANDS)] if banded else \
            [param.resolve(group) for group in GROUPS]

    def value(self, param, cell: np.ndarray, banded: bool = True) -> np.ndarray:
        key = (id(param), banded)
        values = self._cache.get(key)
        if values is None:
            values = self._cache[key] = np.array([e.value for e in self._cells(param, banded)], dtype=float)
        return values[cell]

    def ppf(self, param, u: np.ndarray, cell: np.ndarray, banded: bool = True) -> np.ndarray:
        key = (id(param), banded)
        f = self._cache.get(key)
        if f is None:
            f = self._cache[key] = _quantiles(self._cells(param, banded))
        return f(u, cell)

    def pick(self, param, u: np.ndarray, cell: np.ndarray, banded: bool = True) -> np.ndarray:
        key = (id(param), banded)
        cum = self._cache.get(key)
        if cum is None:
            rows = []
            for e in self._cells(param, banded):
                e.pick(0.5)  # fills the entry's cumulative shares (a zero-share tail never picked)
                rows.append(e.__pydantic_private__["_cum"])
            cum = self._cache[key] = np.array(rows, dtype=float)
        return (cum[cell] <= u[:, None]).sum(axis=1).astype(float)

    def cumulative(self, param, cell: np.ndarray, banded: bool = True) -> np.ndarray:
        """The cumulative shares (one row per cell) of a table of shares, as ``np.cumsum`` gives them."""
        key = (id(param), banded, "cumsum")
        cum = self._cache.get(key)
        if cum is None:
            cum = self._cache[key] = np.array([np.cumsum(e.probabilities()) for e in self._cells(param, banded)])
        return cum[cell]


def _threshold_distance(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """``sim.provider.decisions.threshold_distance`` row by row: each score ``u`` against its own row of
    cumulative shares."""
    rows = np.arange(len(u))
    k = np.minimum((cum <= u[:, None]).sum(axis=1), cum.shape[1] - 1)
    lower = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
    width = cum[rows, k] - lower
    d = np.divide(u - lower, width, out=np.zeros_like(u), where=width > 0)
    return np.where(k > 0, d, np.inf)


_A, _T, _D, _R = (EPISODE_LAYOUT[s][0] for s in (Stream.ASSESSMENT, Stream.TREATMENT, Stream.DETOX, Stream.REHAB))
_C, _X, _M = (EPISODE_LAYOUT[s][0] for s in (Stream.CUSTODY, Stream.AFTER_EXIT, Stream.MORTALITY))
_ATTR = EPISODE_LAYOUT[Stream.ATTRIBUTES][0]
_PROVIDER_U = [PROVIDER_LAYOUT[s][0] + i for s, n in ((Stream.INTAKE, 3), (Stream.PARKING, 1),
                                                       (Stream.DISCHARGE, 4), (Stream.BAND_DRIFT, 1),
                                                       (Stream.EXIT_RECODING, 1), (Stream.RE_ENTRY, 1))
               for i in range(n)]


class Planner:
    """Computes episode plans for one run's epochs (see the module docstring); with ``provider``, the
    ``PROVIDER_COLUMNS`` too."""

    def __init__(self, epochs: list[tuple[float, Scenario]], rng: ClientRandom, provider: bool = False):
        self.epochs = epochs
        self.rng = rng
        self.provider = provider
        self._tables = [_Tables(sc) for _, sc in epochs]
        self._starts = np.array([t for t, _ in epochs])

    def epoch_at(self, t) -> np.ndarray:
        """Index of the epoch in force at each day of ``t``."""
        return np.searchsorted(self._starts, np.asarray(t, dtype=float), side="right") - 1

    def draws(self, clients, episodes) -> np.ndarray:
        """The uniforms the plans of these (client, episode) pairs are made from."""
        return episode_draws(self.rng, clients, episodes, self.provider)

    def attributes(self, rows: np.ndarray, g: np.ndarray, source: np.ndarray, epoch: np.ndarray) -> np.ndarray:
        """Attribute columns (``ATTRIBUTES``) of first referrals, one row per client."""
        out = np.empty((len(g), len(ATTRIBUTES)))
        for e in np.unique(epoch).tolist():
            m = epoch == e
            t, pop, gm = self._tables[e], self.epochs[e][1].population, g[m]
            u = rows[m, _ATTR:_ATTR + 8]
            cj = CJ_SOURCES[source[m]] | (u[:, 5] < t.value(pop.criminal_justice, gm, False))
            offender = cj & (u[:, 6] < t.value(pop.active_offender, gm, False))
            out[m] = np.array([
                u[:, 0] < t.value(pop.male, gm, False),
                t.ppf(pop.age_years, u[:, 1], gm, False),
                u[:, 2] < t.value(pop.injecting, gm, False),
                u[:, 3] < t.value(pop.dual_diagnosis, gm, False),
                u[:, 4] < t.value(pop.housing_problem, gm, False),
                cj,
                np.where(offender, t.ppf(pop.offending_rate_per_year, u[:, 7], gm, False), 0.0)], dtype=float).T
        return out

    def plan(self, rows: np.ndarray, g: np.ndarray, criminal_justice: np.ndarray, referral_epoch: np.ndarray,
             epoch: np.ndarray | int | None = None, band: np.ndarray | None = None) -> np.ndarray:
        """The plans (one row of ``COLUMNS`` per episode) of episodes with uniforms ``rows`` (from
        :meth:`draws`), groups ``g``, criminal-justice involvement, the epoch in force at referral and the epoch
        for the rest (default: the same); ``band``, if given, replaces the assessed band."""
        n = len(g)
        epoch = referral_epoch if epoch is None else np.broadcast_to(epoch, (n,))
        pairs = referral_epoch * len(self.epochs) + epoch
        first = int(pairs[0]) if n else 0
        if n == 0 or (pairs == first).all():  # one epoch throughout: no masks
            return self._columns(rows, g, criminal_justice, *divmod(first, len(self.epochs)), band)
        out = np.empty((n, WIDTH + (len(PROVIDER_COLUMNS) if rows.shape[1] > EPISODE_WIDTH else 0)))
        for pair in np.unique(pairs).tolist():
            m = pairs == pair
            out[m] = self._columns(rows[m], g[m], criminal_justice[m], *divmod(pair, len(self.epochs)),
                                   None if band is None else band[m])
        return out

    def _columns(self, r, g, criminal_justice, at_referral: int, e: int, band) -> np.ndarray:
        """The plan columns of episodes referred in epoch ``at_referral``, planned for epoch ``e``."""
        ta, a = self._tables[at_referral], self.epochs[at_referral][1].assessment
        dependency = ta.pick(a.dependency_domain, r[:, _A + 2], g, False)
        wider = ta.pick(a.wider_needs_domain, r[:, _A + 3], g, False)
        if band is None:
            band = np.minimum(dependency, wider)  # bands run from most to least severe
        band = np.asarray(band).astype(np.int64)
        cell = g * N_BANDS + band
        t, sc = self._tables[e], self.epochs[e][1]
        tr, ma, mort = sc.treatment, sc.mutual_aid, sc.mortality
        cd, ip, rh, ae = sc.community_detox, sc.inpatient_detox, sc.rehab, sc.after_exit
        day = 1.0 / DAYS_PER_YEAR
        mutual_aid = r[:, _T + 9] < t.value(ma.engagement, cell)
        drop_ratio = np.where(mutual_aid, t.value(ma.drop_out_ratio, cell), 1.0)
        patience = tr.waiting_list_patience_days
        hr = np.where(mutual_aid, t.value(ma.relapse_ratio, cell), 1.0)
        relapse_q = 1.0 - (1.0 - r[:, _X]) ** (1.0 / np.where(hr > 0, hr, 1.0))
        n = len(g)
        columns = [
            ta.ppf(a.booking_delay_days, r[:, _A], g, False),
            ta.ppf(a.assessment_days, r[:, _A + 1], g, False),
            dependency, wider, band,
            r[:, _A + 4] < ta.value(a.attends_treatment, cell),
            np.where(dependency <= wider, r[:, _A + 2], r[:, _A + 3]),
            t.ppf(tr.start_delay_days, r[:, _T], cell),
            np.full(n, np.inf) if patience is None else t.ppf(patience, r[:, _T + 1], cell),
            t.pick(tr.modality, r[:, _T + 2], cell),
            mutual_aid,
            t.ppf(tr.completion_weeks, r[:, _T + 3], cell),
            t.ppf(tr.abstinent_before_completion_weeks, r[:, _T + 4], cell),
            np.full(n, tr.planned_exit_min_abstinence_weeks),
            t.value(tr.drop_out_rate_per_year, cell) * day * drop_ratio,
            _exp(r[:, _T + 5]),
            _unplanned_exit(r[:, _T + 6], t.value(tr.declined_share, cell), t.value(tr.withdrawn_share, cell)),
            _after(_exp(r[:, _T + 7]), t.value(tr.transfer_rate_per_year, cell) * day),
            np.where(criminal_justice, _after(_exp(r[:, _T + 8]), t.value(tr.custody_rate_per_year, cell) * day),
                     np.inf),
            t.value(mort.in_treatment_per_100py, cell) / 100.0 / DAYS_PER_YEAR,
            t.value(mort.recovered_per_100py, cell) / 100.0 / DAYS_PER_YEAR,
            t.value(mort.out_of_treatment_per_100py, cell) / 100.0 / DAYS_PER_YEAR,
            t.value(mort.post_exit_ratio, g * N_BANDS + np.maximum(band, 0)),
            np.full(n, DAYS_PER_WEEK * mort.post_exit_weeks),
            *_exp(r[:, _M:_M + 7]).T,
            r[:, _D] < t.value(cd.probability, cell),
            t.ppf(cd.timing_weeks, r[:, _D + 1], cell),
            t.ppf(cd.duration_days, r[:, _D + 2], cell),
            r[:, _D + 3] < t.value(cd.completion, cell),
            r[:, _D + 4] < t.value(ip.probability, cell),
            t.ppf(ip.timing_weeks, r[:, _D + 5], cell),
            t.ppf(ip.stay_days, r[:, _D + 6], cell),
            r[:, _D + 7] < t.value(ip.completion, cell),
            t.ppf(ip.patience_days, r[:, _D + 8], cell),
            r[:, _R] < t.value(rh.probability, cell),
            t.ppf(rh.timing_weeks, r[:, _R + 1], cell),
            t.ppf(rh.stay_weeks, r[:, _R + 2], cell),
            t.pick(rh.outcome, r[:, _R + 3], cell),
            t.ppf(rh.drop_out_weeks, r[:, _R + 4], cell),
            t.ppf(rh.patience_days, r[:, _R + 5], cell),
            t.ppf(sc.aftercare.weeks, r[:, _D + 9], cell),
            t.value(sc.aftercare.drop_out_ratio, cell),
            t.ppf(sc.custody.sentence_weeks, r[:, _C], cell),
            r[:, _C + 1] < t.value(sc.custody.represent_on_release, cell),
            r[:, _X],
            np.where(hr > 0, DAYS_PER_YEAR * t.ppf(ae.relapse_years, np.where(hr > 0, relapse_q, 0.5), cell),
                     np.inf),
            r[:, _X + 1] < t.value(ae.represent_after_relapse, cell),
            t.ppf(ae.represent_delay_weeks, r[:, _X + 2], cell),
            DAYS_PER_YEAR * t.ppf(ae.disengaged_return_years, r[:, _X + 3], cell),
            _after(_exp(r[:, _X + 4]), t.value(ae.arrest_referral, cell) * t.value(sc.offending.recorded_share, cell)),
            DAYS_PER_YEAR * t.ppf(ae.signposted_return_years, r[:, _X + 5], cell),
            r[:, _X + 7] < t.value(ma.signposted_engagement, cell),
            r[:, _X + 8] < t.value(ae.training_after_planned_exit, cell),
            t.ppf(ae.training_weeks, r[:, _X + 9], cell),
        ]
        if r.shape[1] > EPISODE_WIDTH:
            u = columns[DRIFT_U]
            cum = np.where((dependency <= wider)[:, None], ta.cumulative(a.dependency_domain, g, False),
                           ta.cumulative(a.wider_needs_domain, g, False))
            columns += [special.ndtri(r[:, PROVIDER_LAYOUT[Stream.BELIEF][0]]), *r[:, _PROVIDER_U].T,
                        _threshold_distance(u, cum)]
        return np.array(columns, dtype=float).T


class PlanBlock:
    """The uniforms of a batch of episodes and what is needed to plan them again under another epoch or band
    (kept while any of its episodes is under way)."""

    __slots__ = ("planner", "rows", "g", "criminal_justice", "referral_epoch", "band", "_by_epoch")

    def __init__(self, planner: Planner, rows, g, criminal_justice, referral_epoch):
        self.planner, self.rows, self.g = planner, rows, g
        self.criminal_justice, self.referral_epoch = criminal_justice, referral_epoch
        self._by_epoch: dict[int, np.ndarray] = {}
        self.band = None

    def first(self) -> np.ndarray:
        """The plans under each episode's epoch at referral."""
        plans = self.planner.plan(self.rows, self.g, self.criminal_justice, self.referral_epoch)
        self.band = plans[:, BAND].copy()
        return plans

    def again(self, i: int, referral_epoch: int) -> PlanBlock:
        """Episode ``i`` alone, referred in another epoch than its plan assumed."""
        one = slice(i, i + 1)
        return PlanBlock(self.planner, self.rows[one], self.g[one], self.criminal_justice[one],
                         np.array([referral_epoch]))

    def under(self, i: int, epoch: int, band: int) -> list[float]:
        """Episode ``i``'s plan for a stage beginning in ``epoch``, for a client now in ``band``."""
        if band == self.band[i]:
            plans = self._by_epoch.get(epoch)
            if plans is None:
                plans = self._by_epoch[epoch] = self.planner.plan(self.rows, self.g, self.criminal_justice,
                                                                  self.referral_epoch, epoch, self.band)
            return plans[i].tolist()
        one = slice(i, i + 1)
        return self.planner.plan(self.rows[one], self.g[one], self.criminal_justice[one],
                                 self.referral_epoch[one], epoch, np.array([band]))[0].tolist()

"""The client journey as SimPy processes: one generator per stage, reading like the pathway.

A client's life is one process (``client_life``) that runs the stages in turn, episode after episode:
referral -> ``assessment`` -> ``structured_treatment`` (with ``community_detox``, ``inpatient_detox`` and
``residential_rehab`` inside it) -> ``custody`` (if transferred there) -> ``after_exit`` -> re-presentation,
until the client dies, leaves the system or the horizon ends.

Events happen only where a client's state changes. What is known when a stage begins is drawn then: competing
times to planned exit, drop-out, transfer, custody and death, the earliest winning. TOP reviews fall on a
12-week grid and are written, vectorised, when the episode ends. All randomness comes from
:class:`sim.core.randomness.ClientRandom`, keyed by client, episode and decision point.
"""

from __future__ import annotations

import bisect
import heapq
import math

import numpy as np
import simpy
from scipy import special

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.randomness import EPISODE_LAYOUT, ClientRandom, Stream, episode_draws, root_seed
from sim.core.vocabulary import BANDS, GROUPS, MODALITIES, REHAB_OUTCOMES, SOURCES, STATES
from sim.engine import reviews
from sim.engine.capacities import Capacity, Places
from sim.engine.history import Client, History, Recorder
from sim.engine.kernel import ClientProcess, cyclic_gc_paused, events_scheduled
from sim.engine.population import arrivals, group_and_source
from sim.engine.provider import CONTRACT_BLIND, Provider

INF = math.inf
S = {name: i for i, name in enumerate(STATES)}
AWAITING_ASSESSMENT, AWAITING_TREATMENT, IN_TREATMENT = S["awaiting_assessment"], S["awaiting_treatment"], \
    S["in_treatment"]
COMMUNITY_DETOX, AWAITING_INPATIENT_DETOX, INPATIENT_DETOX = S["community_detox"], \
    S["awaiting_inpatient_detox"], S["inpatient_detox"]
AWAITING_REHAB, RESIDENTIAL_REHAB, IN_CUSTODY = S["awaiting_rehab"], S["residential_rehab"], S["in_custody"]
RECOVERED, RELAPSED, DISENGAGED, SIGNPOSTED = S["recovered"], S["relapsed"], S["disengaged"], S["signposted"]
TRANSFERRED, DIED = S["transferred"], S["died"]

NO_NEED = BANDS.index("no_need")
OST = MODALITIES.index("ost")
SOURCE_SELF, SOURCE_ARREST, SOURCE_PRISON = (SOURCES.index(s) for s in ("self", "arrest_referral",
                                                                         "prison_release"))
CJ_SOURCES = {SOURCES.index(s) for s in ("arrest_referral", "court_order", "prison_release")}
COMPLETE, STEP_DOWN, REHAB_DROP_OUT = (REHAB_OUTCOMES.index(o) for o in ("complete", "step_down", "drop_out"))
UNPLANNED = frozenset({"dropped_out", "declined"})
STATE_AFTER_EXIT = {"planned": RECOVERED, "dropped_out": DISENGAGED, "declined": DISENGAGED,
                    "transferred": TRANSFERRED, "custody": IN_CUSTODY, "died": DIED}


# Uniforms for re-presentation episodes are drawn in batches: those of clients due back within this many days
ROWS_AHEAD_DAYS = 30.0
_AWAITING = object()  # a client's next episode's row is in the next batch


def _when(planned: tuple) -> float:
    return planned[0]


class HorizonReached(Exception):
    """Raised instead of waiting past the end of the horizon: the client's process simply stops there."""


def exp_time(u: float, hazard_per_day: float) -> float:
    """Time to an event with a constant hazard, by inversion."""
    return -math.log1p(-u) / hazard_per_day if hazard_per_day > 0 else INF


class Clocks:
    """The competing exit times of a treatment episode, as absolute days; the earliest wins."""

    __slots__ = ("planned", "drop_out", "transfer", "custody", "death", "abstinent_from", "drop_hazard",
                 "declined", "had_intensive")

    def next_exit(self) -> tuple[float, str]:
        return min((self.planned, "planned"), (self.drop_out, "declined" if self.declined else "dropped_out"),
                   (self.transfer, "transferred"), (self.custody, "custody"), (self.death, "died"))

    def pause(self, length: float) -> None:
        """A residential stay stops the community clocks (but not death)."""
        self.planned += length
        self.drop_out += length
        self.transfer += length
        self.custody += length

    def set_drop_hazard(self, now: float, hazard: float) -> None:
        """Change the drop-out hazard from now, keeping the client's luck (memoryless rescaling)."""
        if self.drop_out < INF and hazard > 0:
            self.drop_out = now + (self.drop_out - now) * self.drop_hazard / hazard
        elif hazard <= 0:
            self.drop_out = INF
        self.drop_hazard = hazard


class TreatmentSystem:
    """One simulated run of a scenario: the environment, the capacities, the recorder and the processes."""

    def __init__(self, scenario: Scenario, seed: int | np.random.SeedSequence | None = None,
                 provider: Provider | None = None):
        self.scenario = scenario
        # the provider's responses to its contract (sim.engine.provider); one that never acts in this run
        # (behaviour off, nothing at risk: a block contract) is the contract-blind model, at its speed
        if provider is None or not provider.acts_before(scenario.horizon.end_day):
            provider = CONTRACT_BLIND
        self.provider = provider
        self.acting = provider is not CONTRACT_BLIND
        self.seed = root_seed(scenario.seed if seed is None else seed)
        self.rng = ClientRandom(self.seed)
        h = scenario.horizon
        self.env = simpy.Environment(initial_time=h.start_day)
        self.end = h.end_day
        self.epochs = scenario.epochs()
        self._epoch_starts = [t for t, _ in self.epochs]
        self.record = Recorder()
        self.places = Places(self.env, scenario.capacity)
        self.assessors, self.caseload = self.places["assessors"], self.places["caseload"]
        self.detox_beds, self.rehab_places = self.places["inpatient_detox_beds"], self.places["rehab_places"]
        self.open_treatment: dict[int, tuple] = {}  # client id -> (client, (start, epoch, clocks))
        self.treated: list[tuple] = []  # ended treatment episodes, for their reviews
        self._due: list[tuple] = []  # (day due back, client id, episode, client): rows for the next batch
        self._rows_until = -INF  # the last batch covered clients due back before this day
        self._record_capacity(h.start_day, scenario)
        self.env.process(self.capacity_changes())
        self.referrals()

    # --- running ---------------------------------------------------------------------------------------------

    def run(self, progress=None) -> History:
        """Run to the end of the horizon and return the History. ``progress(t)`` is called every 30 days."""
        with cyclic_gc_paused():
            if progress is None:
                self.env.run(until=self.end)
            else:
                t = self.env.now
                while t < self.end:
                    t = min(t + 30.0, self.end)
                    self.env.run(until=t)
                    progress(t)
            self._write_reviews()
            history = self.record.finish(self.end, self.scenario.horizon, self.scenario.name, self.seed)
        history.meta["simpy_events"] = events_scheduled(self.env)
        return history

    def P(self) -> Scenario:
        """The scenario in force now (dated changes)."""
        if len(self.epochs) == 1:
            return self.scenario
        return self.epochs[bisect.bisect_right(self._epoch_starts, self.env.now) - 1][1]

    def epoch(self) -> int:
        """Index into ``epochs`` of the scenario in force now."""
        return 0 if len(self.epochs) == 1 else bisect.bisect_right(self._epoch_starts, self.env.now) - 1

    def hold(self, until: float) -> float:
        """The day to wake on, for a client's process to yield: ``until``, as ``env.timeout`` would compute it
        (now + (until - now)). Past the horizon the client's process stops instead. A time a rounding error
        before now (e.g. a death time reached as admission + stay) is now."""
        if until > self.end:
            raise HorizonReached
        now = self.env.now
        delay = until - now
        if delay < 0.0:
            if delay < -1e-6:
                raise RuntimeError(f"a hold to day {until} from day {now}: the past")
            delay = 0.0
        return now + delay

    def capacity_changes(self):
        """Dated changes to capacities (vacancies, recruitment, a new hub) take effect on their day."""
        for start, epoch in self.epochs[1:]:
            if start > self.end:
                return
            yield self.env.timeout(start - self.env.now)
            self.places.set(epoch.capacity)
            self._record_capacity(start, epoch)

    def _record_capacity(self, t: float, sc: Scenario) -> None:
        for name, value in Places.levels(sc.capacity):
            self.record.capacity.append((name, t, value))

    # --- referral --------------------------------------------------------------------------------------------

    def referrals(self) -> None:
        """Referral. First referrals arrive by Poisson streams per substance group and referral source
        (generated before the run, see :mod:`sim.engine.population`); each arrival is one timeout, whose callback
        gives the new client attributes and a life and schedules the next arrival."""
        times, ids = arrivals(self.scenario, self.seed)
        self._arrivals = self._with_rows(times, ids)
        self._next_arrival()

    def _with_rows(self, times: np.ndarray, ids: np.ndarray, chunk: int = 1024):
        """(time, client id, first episode's row) of each arrival; rows drawn a chunk at a time and copied, so
        each lives only as long as its client's first episode."""
        for at in range(0, len(ids), chunk):
            rows = episode_draws(self.rng, ids[at:at + chunk], 0)
            yield from zip(times[at:at + chunk].tolist(), ids[at:at + chunk].tolist(), (r.copy() for r in rows))

    def _next_arrival(self) -> None:
        arrival = next(self._arrivals, None)
        if arrival is not None:
            ev = self.env.timeout(arrival[0] - self.env.now, arrival)
            ev.callbacks.append(self._arrive)

    def _arrive(self, ev: simpy.Event) -> None:
        t, cid, draws = ev.value
        self._next_arrival()
        ClientProcess(self.env, self.client_life(self.new_client(cid, t, draws)))

    def new_client(self, cid: int, t: float, draws: np.ndarray | None = None) -> Client:
        g, s = group_and_source(cid)
        c = Client(cid, g, s, t)
        c.draws = draws
        pop = self.P().population
        group = GROUPS[g]
        u = self.draws(c, Stream.ATTRIBUTES, 8)
        c.male = bool(u[0] < pop.male.resolve(group).value)
        c.age = float(pop.age_years.resolve(group).ppf(u[1]))
        c.injecting = bool(u[2] < pop.injecting.resolve(group).value)
        c.dual_diagnosis = bool(u[3] < pop.dual_diagnosis.resolve(group).value)
        c.housing_problem = bool(u[4] < pop.housing_problem.resolve(group).value)
        c.criminal_justice = s in CJ_SOURCES or bool(u[5] < pop.criminal_justice.resolve(group).value)
        offender = c.criminal_justice and bool(u[6] < pop.active_offender.resolve(group).value)
        c.offending_rate = float(pop.offending_rate_per_year.resolve(group).ppf(u[7])) if offender else 0.0
        self.record.new_client(c)
        return c

    def draws(self, c: Client, stream: Stream, n: int, offset: int = 0) -> list[float]:
        """``n`` uniforms of this client's current episode at a decision point (see :mod:`sim.core.randomness`):
        from the episode's row when it was drawn in a batch (at arrival, or before a re-presentation), else
        computed. The numbers are the same either way."""
        row = c.draws
        if row is _AWAITING:
            row = c.draws = self._draw_batch(c)
        if row is not None:
            start, size = EPISODE_LAYOUT[stream]
            if offset + n <= size:
                start += offset
                return row[start:start + n].tolist()
        return self.rng.draws(stream, c.id, c.episode, n, offset)

    def _due_back(self, c: Client, day: float) -> None:
        """The client will re-present on ``day``: their next episode's row joins a batch, unless the batch
        for that day has been drawn (then its numbers are computed as they are needed)."""
        c.draws = None  # nothing more is drawn in this episode
        if day >= self._rows_until:
            heapq.heappush(self._due, (day, c.id, c.episode + 1, c))
            c.next_draws = _AWAITING

    def _draw_batch(self, asking: Client):
        """The rows of every client due back in the next ``ROWS_AHEAD_DAYS``, in one vectorised draw; the row
        of the client asking."""
        until = self.env.now + ROWS_AHEAD_DAYS
        batch = []
        while self._due and self._due[0][0] < until:
            batch.append(heapq.heappop(self._due))
        self._rows_until = until
        rows = episode_draws(self.rng, [b[1] for b in batch], [b[2] for b in batch])
        for (_, _, episode, c), row in zip(batch, rows):
            row = row.copy()  # not a view: the batch is freed, each row lives as long as its episode
            if c.episode == episode:
                c.draws = row
            else:
                c.next_draws = row
        return asking.draws if asking.draws is not _AWAITING else None

    def _next_episode(self, c: Client) -> None:
        c.episode += 1
        c.draws, c.next_draws = c.next_draws, None

    def client_life(self, c: Client):
        """A client's whole life in the system, episode after episode, until death, transfer or the horizon."""
        rec = self.record
        source = c.source
        try:
            while source is not None:
                now = self.env.now
                rec.new_episode(c, now, source)
                rec.event(c, now, "referral" if c.episode == 0 else "re_presentation", SOURCES[source])
                rec.state(c, AWAITING_ASSESSMENT, now)
                attends = yield from self.assessment(c)
                if c.band == NO_NEED:
                    after = self.signpost(c)
                elif not attends:
                    rec.event(c, self.env.now, "did_not_attend")
                    c.ep.exit, c.ep.exit_reason = self.env.now, "did_not_attend"
                    after = DISENGAGED
                elif self.responds() and not (yield from self.intake(c)):
                    after = DISENGAGED
                else:
                    after = yield from self.structured_treatment(c)
                if after == IN_CUSTODY:
                    after = yield from self.custody(c)
                    if after == "prison_release":
                        self._next_episode(c)
                        source = SOURCE_PRISON
                        continue
                source = yield from self.after_exit(c, after)
                if source is not None:
                    self._next_episode(c)
        except HorizonReached:
            pass
        c.draws = c.next_draws = None  # the recorder keeps the client to the end; not their uniforms

    # --- assessment ------------------------------------------------------------------------------------------

    def assessment(self, c: Client):
        """LASARS assessment, independent of the provider.

        Enters at referral or re-presentation. Waits a booking delay, then queues for an assessor (FIFO) and is
        assessed for the assessor's time. Scores two need domains (dependency; wider needs) and takes the more
        severe as the band. Leaves with the band set and whether the client will attend treatment.
        """
        env, rec = self.env, self.record
        P = self.P().assessment
        group = GROUPS[c.g]
        u = self.draws(c, Stream.ASSESSMENT, 5)
        yield self.hold(env.now + P.booking_delay_days.resolve(group).ppf(u[0]))
        req = self.assessors.request()
        if req is not None:
            yield req
        rec.event(c, env.now, "assessment_start")
        yield self.hold(env.now + P.assessment_days.resolve(group).ppf(u[1]))
        self.assessors.release()  # past the horizon the place stays held: nothing after it is reported
        dependency = P.dependency_domain.resolve(group).pick(u[2])
        wider = P.wider_needs_domain.resolve(group).pick(u[3])
        c.band = min(dependency, wider)  # bands run from most to least severe
        ep = c.ep
        ep.assessed, ep.band, ep.dependency, ep.wider_needs = env.now, c.band, dependency, wider
        ep.assessed_band = c.band
        rec.event(c, env.now, "assessed", BANDS[c.band])
        if self.responds():
            deciding = P.dependency_domain if dependency <= wider else P.wider_needs_domain
            self.drift_band(c, deciding.resolve(group), u[2] if dependency <= wider else u[3])
        return bool(u[4] < P.attends_treatment.at(c.g, c.band).value)

    def signpost(self, c: Client) -> int:
        """No need for structured treatment: brief advice and signposting to mutual aid, then out."""
        now = self.env.now
        u = self.draws(c, Stream.AFTER_EXIT, 1, 7)
        c.ep.mutual_aid = bool(u[0] < self.P().mutual_aid.signposted_engagement.at(c.g, c.band).value)
        c.ep.exit, c.ep.exit_reason = now, "signposted"
        self.record.event(c, now, "signposted", "mutual_aid" if c.ep.mutual_aid else "")
        return SIGNPOSTED

    # --- structured treatment --------------------------------------------------------------------------------

    def structured_treatment(self, c: Client):
        """Structured treatment on a recovery worker's caseload, with any detox or rehab inside the episode.

        Enters after an assessment into a structured-need band. Waits the start delay, then for a caseload place
        (FIFO), leaving the waiting list after its patience if one is set. At the start draws the modality,
        mutual-aid engagement and the competing times to planned exit (free of dependence after at least 12
        weeks abstinent), drop-out, transfer, custody and death, and plans any community detox, inpatient detox
        or rehab; whichever comes first happens. Leaves with the state to go to after treatment.
        """
        env, rec = self.env, self.record
        sc = self.P()
        tr = sc.treatment
        g, b = c.g, c.band
        u = self.draws(c, Stream.TREATMENT, 12)
        rec.state(c, AWAITING_TREATMENT, env.now)
        delay = tr.start_delay_days.at(g, b).ppf(u[0])
        if self.responds():
            delay = self.throttled_delay(c, delay)
        yield self.hold(env.now + delay)
        req = self.caseload.request()
        if req is not None:
            patience = tr.waiting_list_patience_days
            give_up = INF if patience is None else env.now + patience.at(g, b).ppf(u[1])
            if give_up > self.end:
                yield req
            else:
                yield req | env.timeout(give_up - env.now)
                if not req.triggered:
                    self.caseload.leave_queue(req)
                    rec.event(c, env.now, "left_waiting_list", "caseload")
                    c.ep.exit, c.ep.exit_reason = env.now, "left_waiting_list"
                    return DISENGAGED
        sc = self.P()
        tr, ma = sc.treatment, sc.mutual_aid
        start = env.now
        ep = c.ep
        ep.treatment_start = start
        ep.modality = tr.modality.at(g, b).pick(u[2])
        ep.mutual_aid = bool(u[9] < ma.engagement.at(g, b).value)
        rec.event(c, start, "treatment_start", MODALITIES[ep.modality])
        if ep.mutual_aid:
            rec.event(c, start, "mutual_aid_engaged")
        rec.state(c, IN_TREATMENT, start)

        completion, drop_out = self.effort_at_start(c, start) if self.responds() else (1.0, 1.0)
        k = self.clocks(c, sc, start, u, completion, drop_out)
        plan = self.plan_interventions(c, sc, start)
        epoch = self.epoch()
        self.open_treatment[c.id] = (c, (start, epoch, k))
        timed = not self.acting  # a planned discharge's timing is decided once, when it comes due
        while True:
            t_exit, reason = k.next_exit()
            if not timed and reason == "planned" and not (plan and plan[0][0] < t_exit):
                timed = True
                if self.responds(t_exit):
                    self.time_discharge(c, k, t_exit)
                continue
            if plan and plan[0][0] < t_exit:
                when, stage = plan.pop(0)
                if when < env.now:
                    continue  # its time passed during a residential stay
                yield self.hold(when)
                yield from stage(c, k)
                continue
            yield self.hold(t_exit)
            break
        self.caseload.release()
        del self.open_treatment[c.id]
        now = env.now
        recorded = self.recode_exit(c, reason) if reason in UNPLANNED and self.responds() else reason
        ep.exit, ep.exit_reason = now, recorded
        rec.event(c, now, "exit", recorded)
        self._treatment_ended(c, start, epoch, k, now, reason == "planned")
        if reason == "died":
            self.die(c)
        if ep.modality == OST or k.had_intensive:
            c.raised_until = now + DAYS_PER_WEEK * self.P().mortality.post_exit_weeks
        return STATE_AFTER_EXIT[reason]

    def clocks(self, c: Client, sc: Scenario, start: float, u: np.ndarray, completion_ratio: float = 1.0,
               drop_out_ratio: float = 1.0) -> Clocks:
        """The competing exit times of a new treatment episode. The ratios (provider effort; 1 without provider
        behaviour) multiply the completion and drop-out hazards."""
        tr, g, b = sc.treatment, c.g, c.band
        day = 1.0 / DAYS_PER_YEAR
        k = Clocks()
        completion = start + DAYS_PER_WEEK * tr.completion_weeks.at(g, b).ppf(u[3]) / completion_ratio
        abstinent = DAYS_PER_WEEK * tr.abstinent_before_completion_weeks.at(g, b).ppf(u[4])
        k.abstinent_from = max(start, completion - abstinent)
        k.planned = max(completion, k.abstinent_from + DAYS_PER_WEEK * tr.planned_exit_min_abstinence_weeks)
        ratio = sc.mutual_aid.drop_out_ratio.at(g, b).value if c.ep.mutual_aid else 1.0
        k.drop_hazard = tr.drop_out_rate_per_year.at(g, b).value * day * ratio * drop_out_ratio
        k.drop_out = start + exp_time(u[5], k.drop_hazard)
        k.declined = bool(u[6] < tr.declined_share.at(g, b).value)
        k.transfer = start + exp_time(u[7], tr.transfer_rate_per_year.at(g, b).value * day)
        k.custody = (start + exp_time(u[8], tr.custody_rate_per_year.at(g, b).value * day)
                     if c.criminal_justice else INF)
        k.death = self.death_time(c, sc.mortality.in_treatment_per_100py.at(g, b).value, 0)
        k.had_intensive = False
        return k

    def plan_interventions(self, c: Client, sc: Scenario, start: float) -> list:
        """Which of community detox, inpatient detox and rehab this episode would include, and when."""
        g, b = c.g, c.band
        ud = self.draws(c, Stream.DETOX, 6)
        ur = self.draws(c, Stream.REHAB, 2)
        plan = []
        if ud[0] < sc.community_detox.probability.at(g, b).value:
            plan.append((start + DAYS_PER_WEEK * sc.community_detox.timing_weeks.at(g, b).ppf(ud[1]),
                         self.community_detox))
        if ud[4] < sc.inpatient_detox.probability.at(g, b).value:
            plan.append((start + DAYS_PER_WEEK * sc.inpatient_detox.timing_weeks.at(g, b).ppf(ud[5]),
                         self.inpatient_detox))
        if ur[0] < sc.rehab.probability.at(g, b).value:
            plan.append((start + DAYS_PER_WEEK * sc.rehab.timing_weeks.at(g, b).ppf(ur[1]), self.residential_rehab))
        if len(plan) > 1:
            plan.sort(key=_when)
        return plan

    def _after_abstinence_start(self, c: Client, k: Clocks, sc: Scenario, abstinent_from: float) -> None:
        """A completed detox or a rehab step-down: aftercare in the community, then a planned exit."""
        g, b = c.g, c.band
        now = self.env.now
        u = self.draws(c, Stream.DETOX, 1, 9)
        k.abstinent_from = abstinent_from
        k.planned = max(now + DAYS_PER_WEEK * sc.aftercare.weeks.at(g, b).ppf(u[0]),
                        abstinent_from + DAYS_PER_WEEK * sc.treatment.planned_exit_min_abstinence_weeks)
        k.set_drop_hazard(now, k.drop_hazard * sc.aftercare.drop_out_ratio.at(g, b).value)

    def _raise_mortality(self, c: Client, k: Clocks, sc: Scenario, index: int) -> None:
        """Loss of tolerance after a detox or rehab: the death time is drawn again with the raised risk."""
        c.raised_until = self.env.now + DAYS_PER_WEEK * sc.mortality.post_exit_weeks
        k.death = self.death_time(c, sc.mortality.in_treatment_per_100py.at(c.g, c.band).value, index)
        k.had_intensive = True

    def community_detox(self, c: Client, k: Clocks):
        """Community detox, inside the treatment episode and on the caseload.

        Enters at its planned time. Lasts its duration unless an exit comes first. Completed: abstinent from
        the end, aftercare, then a planned exit. Not completed: back to community treatment as before.
        """
        env, rec = self.env, self.record
        sc = self.P()
        g, b = c.g, c.band
        u = self.draws(c, Stream.DETOX, 2, 2)
        rec.state(c, COMMUNITY_DETOX, env.now)
        rec.event(c, env.now, "community_detox_start")
        end = env.now + sc.community_detox.duration_days.at(g, b).ppf(u[0])
        t_exit, _ = k.next_exit()
        if t_exit < end:
            yield self.hold(t_exit)
            return
        yield self.hold(end)
        completed = bool(u[1] < sc.community_detox.completion.at(g, b).value)
        rec.event(c, env.now, "community_detox_end", "completed" if completed else "not_completed")
        rec.state(c, IN_TREATMENT, env.now)
        if completed:
            self._after_abstinence_start(c, k, sc, env.now)
        self._raise_mortality(c, k, sc, 1)

    def _wait_for_place(self, c: Client, k: Clocks, place: Capacity, patience_days: float, waiting_state: int,
                        what: str):
        """Wait on a list for a bed or place while community treatment goes on; True if admitted."""
        env, rec = self.env, self.record
        rec.state(c, waiting_state, env.now)
        rec.event(c, env.now, f"{what}_referral")
        req = place.request()
        if req is None:
            return True
        give_up = env.now + patience_days
        t_exit, _ = k.next_exit()
        until = min(give_up, t_exit)
        if until > self.end:
            yield req
            return True
        yield req | env.timeout(until - env.now)
        if req.triggered:
            return True
        place.leave_queue(req)
        if give_up <= t_exit:
            rec.event(c, env.now, "left_waiting_list", what)
        rec.state(c, IN_TREATMENT, env.now)
        return False

    def _stay(self, c: Client, k: Clocks, place: Capacity, state: int, event: str, stay: float):
        """A residential stay in a place already granted: the community clocks pause for it; death does not.
        True if the client leaves alive."""
        admission = self.env.now
        self.record.state(c, state, admission)
        self.record.event(c, admission, event)
        stay = min(stay, k.death - admission)
        yield self.hold(admission + stay)
        place.release()
        k.pause(stay)
        return k.death > self.env.now

    def inpatient_detox(self, c: Client, k: Clocks):
        """Inpatient detox: a bed from a limited number, with a waiting list clients may leave.

        Enters at its planned time onto the waiting list (still in community treatment). Admitted: community
        clocks pause for the stay; death can still occur. Completed: abstinent from discharge, aftercare, then a
        planned exit. Not completed, or left the list: back to community treatment.
        """
        env, rec = self.env, self.record
        sc = self.P()
        g, b, ip = c.g, c.band, sc.inpatient_detox
        u = self.draws(c, Stream.DETOX, 3, 6)
        admitted = yield from self._wait_for_place(c, k, self.detox_beds, ip.patience_days.at(g, b).ppf(u[2]),
                                                   AWAITING_INPATIENT_DETOX, "inpatient_detox")
        if not admitted:
            return
        alive = yield from self._stay(c, k, self.detox_beds, INPATIENT_DETOX, "inpatient_detox_start",
                                      ip.stay_days.at(g, b).ppf(u[0]))
        if not alive:
            return
        completed = bool(u[1] < ip.completion.at(g, b).value)
        rec.event(c, env.now, "inpatient_detox_end", "completed" if completed else "not_completed")
        rec.state(c, IN_TREATMENT, env.now)
        if completed:
            self._after_abstinence_start(c, k, sc, env.now)
        self._raise_mortality(c, k, sc, 2)

    def residential_rehab(self, c: Client, k: Clocks):
        """Residential rehab: limited places with a waiting list, early drop-out, step-down to the community.

        Enters at its planned time onto the waiting list (still in community treatment). Admitted: community
        clocks pause. Leaves by completing free of dependence (a planned exit once 12 weeks abstinent), stepping
        down to community aftercare, dropping out (an unplanned exit), or dying.
        """
        env, rec = self.env, self.record
        sc = self.P()
        g, b, rh = c.g, c.band, sc.rehab
        u = self.draws(c, Stream.REHAB, 4, 2)
        admitted = yield from self._wait_for_place(c, k, self.rehab_places, rh.patience_days.at(g, b).ppf(u[3]),
                                                   AWAITING_REHAB, "rehab")
        if not admitted:
            return
        admission = env.now
        outcome = rh.outcome.at(g, b).pick(u[1])
        stay = DAYS_PER_WEEK * rh.stay_weeks.at(g, b).ppf(u[0])
        if outcome == REHAB_DROP_OUT:
            stay = min(stay, DAYS_PER_WEEK * rh.drop_out_weeks.at(g, b).ppf(u[2]))
        alive = yield from self._stay(c, k, self.rehab_places, RESIDENTIAL_REHAB, "rehab_start", stay)
        if not alive:
            return
        now = env.now
        rec.event(c, now, "rehab_end", REHAB_OUTCOMES[outcome])
        self._raise_mortality(c, k, sc, 3)
        if outcome == REHAB_DROP_OUT:
            k.declined = False
            k.drop_out = now  # an unplanned exit, straight from rehab
            return
        rec.state(c, IN_TREATMENT, now)
        if outcome == COMPLETE:
            k.abstinent_from = admission
            k.planned = max(now, admission + DAYS_PER_WEEK * sc.treatment.planned_exit_min_abstinence_weeks)
        else:
            self._after_abstinence_start(c, k, sc, admission)

    # --- custody and after exit -------------------------------------------------------------------------------

    def custody(self, c: Client):
        """Custody: treatment mirrors the community inside. Enters on transfer to custody. Leaves on release
        (re-presenting by the prison-release route, or out of treatment with raised mortality), or dies."""
        env, rec = self.env, self.record
        sc = self.P()
        g, b = c.g, c.band
        u = self.draws(c, Stream.CUSTODY, 2)
        rec.state(c, IN_CUSTODY, env.now)
        release = env.now + DAYS_PER_WEEK * sc.custody.sentence_weeks.at(g, b).ppf(u[0])
        death = self.death_time(c, sc.mortality.in_treatment_per_100py.at(g, b).value, 4)
        if death < release:
            yield self.hold(death)
            self.die(c)
            return DIED
        yield self.hold(release)
        rec.event(c, env.now, "custody_release")
        c.raised_until = env.now + DAYS_PER_WEEK * sc.mortality.post_exit_weeks
        if u[1] < sc.custody.represent_on_release.at(g, b).value:
            return "prison_release"
        return DISENGAGED

    def after_exit(self, c: Client, state: int):
        """Out of treatment, until re-presentation or death.

        Enters after an exit (recovered after a planned exit; disengaged after an unplanned exit, a missed
        start or a release from custody; signposted after a no-need assessment). Recovered clients relapse by
        a time-varying hazard (mutual aid lowers it); relapsed, disengaged and signposted clients may re-present
        at any time later, with no limit. Returns the source of the next referral, or None.
        """
        env, rec = self.env, self.record
        g, b = c.g, c.band
        u = self.draws(c, Stream.AFTER_EXIT, 6)
        step = 0
        while True:
            rec.state(c, state, env.now)
            if state in (DIED, TRANSFERRED):
                return None
            sc = self.P()
            ae, mort = sc.after_exit, sc.mortality
            rate = (mort.recovered_per_100py if state == RECOVERED else mort.out_of_treatment_per_100py)
            death = self.death_time(c, rate.at(g, b).value, 5 + step)
            step += 1
            source = SOURCE_SELF
            if state == RECOVERED:
                hr = sc.mutual_aid.relapse_ratio.at(g, b).value if c.ep.mutual_aid else 1.0
                q = 1.0 - (1.0 - u[0]) ** (1.0 / hr) if hr > 0 else 0.0
                nxt = env.now + DAYS_PER_YEAR * ae.relapse_years.at(g, b).ppf(q) if hr > 0 else INF
                held = c.ep.discharge_shift_days
                if held > 0 and hr > 0 and step == 1:
                    # a client held past readiness has already come through the held weeks abstinent: the
                    # relapse clock runs from readiness, given no relapse during the hold (M4)
                    relapse = ae.relapse_years.at(g, b)
                    survived = relapse.cdf(held / DAYS_PER_YEAR)
                    nxt = env.now - held + DAYS_PER_YEAR * relapse.ppf(survived + q * (1.0 - survived))
            elif state == RELAPSED:
                returns = u[1] < ae.represent_after_relapse.at(g, b).value
                nxt = env.now + DAYS_PER_WEEK * ae.represent_delay_weeks.at(g, b).ppf(u[2]) if returns else INF
                if returns and c.ep.exit_reason == "planned" and self.responds():
                    nxt = self.defer_re_entry(c, nxt)
            elif state == DISENGAGED:
                nxt = env.now + exp_time(u[3], ae.disengaged_represent_rate_per_year.at(g, b).value / DAYS_PER_YEAR)
                if u[4] < ae.criminal_justice_route.at(g, b).value:
                    source = SOURCE_ARREST
            else:  # signposted
                nxt = env.now + exp_time(u[5], ae.signposted_represent_rate_per_year.at(g, b).value / DAYS_PER_YEAR)
            if state == RECOVERED and step == 1:
                self._training(c, sc, min(nxt, death))
            if death <= nxt:
                yield self.hold(death)
                self.die(c)
                return None
            wait = self.hold(nxt)
            if state != RECOVERED:
                self._due_back(c, nxt)
            yield wait
            if state == RECOVERED:
                rec.event(c, env.now, "relapse")
                state = RELAPSED
                continue
            return source

    def _training(self, c: Client, sc: Scenario, recovered_until: float) -> None:
        """Entering education, training or employment after a planned exit, while still recovered: recorded
        as an event, with no SimPy event of its own."""
        u = self.draws(c, Stream.AFTER_EXIT, 2, 8)
        if u[0] < sc.after_exit.training_after_planned_exit.at(c.g, c.band).value:
            t = self.env.now + DAYS_PER_WEEK * sc.after_exit.training_weeks.at(c.g, c.band).ppf(u[1])
            if t < recovered_until and t <= self.end:
                self.record.event(c, t, "entered_training")

    def die(self, c: Client) -> None:
        now = self.env.now
        self.record.event(c, now, "death", STATES[c.state])
        self.record.state(c, DIED, now)

    def death_time(self, c: Client, per_100py: float, index: int) -> float:
        """Absolute time of death from now, with the raised risk until ``c.raised_until``."""
        h = per_100py / 100.0 / DAYS_PER_YEAR
        if h <= 0:
            return INF
        now = self.env.now
        e = -math.log1p(-self.draws(c, Stream.MORTALITY, 1, index)[0])
        mort = self.P().mortality
        if c.raised_until > now:
            hr = h * mort.post_exit_ratio.at(c.g, max(c.band, 0)).value
            early = hr * (c.raised_until - now)
            if e < early:
                return now + e / hr
            return c.raised_until + (e - early) / h
        return now + e / h

    # --- provider behaviour (sim.provider.model): only with a ProviderModel whose mode is not off -----------------

    def responds(self, t: float | None = None) -> bool:
        """Whether the provider may respond at day ``t`` (default now): the engine asks it nothing otherwise."""
        return self.acting and self.provider.responds(self.env.now if t is None else t)

    def belief(self, c: Client) -> float:
        """The provider's belief shock about this client's prospects (standard normal), one per episode."""
        return float(special.ndtri(self.rng.draws(Stream.BELIEF, c.id, c.episode, 1)[0]))

    def drift_band(self, c: Client, domain, u: float) -> None:
        """M6 band drift: where the provider assesses, a score near the next more severe band may be recorded
        in it. ``ep.assessed_band`` keeps the assessment's own band."""
        if c.band == 0:
            return
        now = self.env.now
        p = self.provider.band_drift_at(u, np.cumsum(domain.probabilities()), c.band, now)
        if p > 0 and self.rng.draws(Stream.BAND_DRIFT, c.id, c.episode, 1)[0] < p:
            self.record.event(c, now, "band_drift", BANDS[c.band - 1])
            c.band -= 1
            c.ep.band = c.band

    def intake(self, c: Client):
        """M1 cream-skimming: the provider accepts an assessed referral for a start, or deflects it.

        Enters after an assessment into a structured-need band. A deflected referral is either signposted out
        (an exit, ``deflected``; True is not returned) or delayed before the start. Leaves True to go on to
        structured treatment, False if turned away."""
        now = self.env.now
        p = float(self.provider.accept_probability(c.band, now, self.belief(c)))
        if p >= 1.0:
            return True
        u = self.rng.draws(Stream.INTAKE, c.id, c.episode, 3)
        if u[0] < p:
            return True
        signposted, delay = self.provider.deflection(u[1], u[2])
        c.ep.deflected = True
        self.record.event(c, now, "deflected", "signposted" if signposted else "delayed")
        if signposted:
            c.ep.exit, c.ep.exit_reason = now, "deflected"
            return False
        yield self.hold(now + delay)
        return True

    def throttled_delay(self, c: Client, delay: float) -> float:
        """M5 gatekeeping: a low-margin referral's start is slowed while the caseload is nearly full (no longer
        than a wait standard allows), and waits out any intake freeze (M7)."""
        use = self.caseload.in_use / self.caseload.capacity if self.caseload.capacity else 1.0
        return self.provider.start_delay(c.band, self.env.now, delay, use, self.belief(c))

    def effort_at_start(self, c: Client, start: float) -> tuple[float, float]:
        """M2 parking and M3 effort shift at the start of an episode: the multipliers on the completion and
        drop-out hazards. Parking (decided once for the episode) cuts contacts and positive outcomes and raises
        drop-out; effort shifted to exit work speeds completion, away from unpaid care loosens retention."""
        p = self.provider
        completion, drop_out = p.start_effort(c.band, start)
        parked = float(p.parking_probability(c.band, start, self.belief(c)))
        if parked > 0 and self.rng.draws(Stream.PARKING, c.id, c.episode, 1)[0] < parked:
            effects = p.parking_effects()
            completion *= effects.outcome_multiplier
            drop_out *= effects.drop_out_multiplier
            c.ep.parked = True
            self.record.event(c, start, "parked")
        return completion, drop_out

    def time_discharge(self, c: Client, k: Clocks, due: float) -> None:
        """M4 discharge timing, when a planned exit comes due: hold a clinically ready client while the
        sustained non-re-presentation outcome pays for it, or bring the discharge forward when only completion
        pays (never before the abstinence a planned exit needs)."""
        sc = self.P()
        g, b = c.g, c.band
        u = self.rng.draws(Stream.DISCHARGE, c.id, c.episode, 1)[0]
        shift = self.provider.discharge_shift(b, due, max(due - k.abstinent_from, 0.0),
                                              sc.after_exit.relapse_years.at(g, b),
                                              sc.after_exit.represent_after_relapse.at(g, b).value, u)
        if shift == 0.0:
            return
        earliest = max(self.env.now, k.abstinent_from + DAYS_PER_WEEK * sc.treatment.planned_exit_min_abstinence_weeks)
        planned = max(due + shift, earliest)
        if planned == due:
            return
        k.planned = planned
        c.ep.discharge_shift_days = planned - due
        kind = "discharge_held" if k.planned > due else "discharge_fast_tracked"
        self.record.event(c, self.env.now, kind, f"{abs(k.planned - due):.1f}")

    def recode_exit(self, c: Client, reason: str) -> str:
        """M4 under stress: an unplanned exit recorded as a transfer out (the client is still disengaged)."""
        p = self.provider.recode_probability(self.env.now)
        if p > 0 and self.rng.draws(Stream.EXIT_RECODING, c.id, c.episode, 1)[0] < p:
            self.record.event(c, self.env.now, "exit_recoded", reason)
            return "transferred"
        return reason

    def defer_re_entry(self, c: Client, due: float) -> float:
        """M4 under stress: a relapsed completer returning just before the sustained-outcome window closes is
        taken back only once it has closed (re-presentations bunch just after the window)."""
        window = self.provider.sustained_window()
        if window is None:
            return due
        closes = c.ep.exit + window
        p = self.provider.defer_probability(due, closes - due)
        if p > 0 and self.rng.draws(Stream.RE_ENTRY, c.id, c.episode, 1)[0] < p:
            self.record.event(c, self.env.now, "re_entry_deferred", f"{closes + 1.0 - due:.1f}")
            return closes + 1.0
        return due

    # --- TOP reviews and harm reduction: facts now, tables after the run --------------------------------------

    def _treatment_ended(self, c: Client, start: float, epoch: int, k: Clocks, end: float, planned: bool) -> None:
        """Note what the episode's TOP reviews and interventions depend on (see :mod:`sim.engine.reviews`)."""
        self.treated.append((c.id, c.episode, c.g, c.band, epoch, start, end, planned, k.abstinent_from,
                             c.injecting, c.housing_problem, c.offending_rate))

    def _write_reviews(self) -> None:
        for c, (start, epoch, k) in list(self.open_treatment.values()):
            self._treatment_ended(c, start, epoch, k, self.end, planned=False)
        rows = self.treated
        columns = dict(zip(reviews.EPISODE_COLUMNS, (np.array(x) for x in zip(*rows)))) if rows else \
            {name: np.array([], dtype=float) for name in reviews.EPISODE_COLUMNS}
        for name in ("client_id", "episode", "g", "b", "epoch"):
            columns[name] = columns[name].astype(np.int64)
        for name in ("planned", "injecting", "housing_problem"):
            columns[name] = columns[name].astype(bool)
        self.treated = []
        table, events = reviews.generate(columns, self.epochs, self.rng, self.provider if self.acting else None)
        del columns
        self.record.review_blocks.append(tuple(table[name] for name in reviews.REVIEW_COLUMNS))
        for row in events:
            self.record.add_event(*row)


def simulate(scenario: Scenario, seed: int | np.random.SeedSequence | None = None, progress=None,
             provider=None) -> History:
    """Simulate one replication of a scenario; ``seed`` defaults to the scenario's own. ``provider``: a
    :class:`sim.provider.model.ProviderModel` (see :func:`sim.experiments.providers.provider_model`) for a provider responding
    to its contract; None, or a behaviour mode of off, is the contract-blind model."""
    return TreatmentSystem(scenario, seed, provider).run(progress)

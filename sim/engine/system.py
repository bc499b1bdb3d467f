"""The client journey as SimPy processes: one generator per stage, reading like the pathway.

A client's life is one process (``client_life``) that runs the stages in turn, episode after episode:
referral -> ``assessment`` -> ``structured_treatment`` (with ``community_detox``, ``inpatient_detox`` and
``residential_rehab`` inside it) -> ``custody`` (if transferred there) -> ``after_exit`` -> re-presentation,
until the client dies, leaves the system or the horizon ends.

Python runs per batch, not per client decision: everything about an episode that does not depend on a queue
(delays, band, modality, the competing clocks to planned exit, drop-out, transfer, custody and death, the detox
and rehab plan, what follows each exit) is planned for many episodes at once by :mod:`sim.engine.plans`, from
the keyed uniforms of :class:`sim.core.randomness.ClientRandom`. The processes only wait, for places and for
planned times, reading their plan; a stage that needs no place and nothing to wait for (a referral, a relapse,
entering training) has no SimPy event. The History's routine events (referral, assessment, start, exit) are written from
the episodes' records when the run ends, and TOP reviews, vectorised, from the treatment episodes' facts.
"""

from __future__ import annotations

import bisect
import math
import warnings

import numpy as np
import simpy

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.errors import UnsettledWarmupWarning
from sim.core.randomness import ClientRandom, root_seed
from sim.core.vocabulary import BANDS, MODALITIES, REHAB_OUTCOMES, SOURCES, STATES, UNPLANNED_EXITS
from sim.engine import reviews
from sim.engine.capacities import Capacity, Places
from sim.engine.history import Client, History, Recorder
from sim.engine.kernel import ClientProcess, cyclic_gc_paused, events_scheduled
from sim.engine.plans import (ABSTINENT_WEEKS, AFTERCARE_DROP_RATIO, AFTERCARE_WEEKS, ASSESSMENT_DAYS, ATTENDS, BAND,
                              BAND_DRIFT_U, BELIEF_Z, BOOKING_DAYS, CDETOX, CDETOX_AT_WEEKS, CDETOX_DAYS, CDETOX_DONE, ARREST_OFFENCES,
                              COMPLETION_WEEKS, CUSTODY_DAYS, DEFLECTION_DELAY_U, DEFLECTION_U, DEPENDENCY,
                              CAUTION_U, CAUTION_WEEKS_U, DISCHARGE_U, DISENGAGED_DAYS, HELD_DECLINE_U, DRIFT_DISTANCE, DROP_E,
                              DROP_HAZARD, E0, E1, E2, E3, E4, E5, E6, H_OUT, H_RECOVERED, H_TREATMENT, IDETOX,
                              IDETOX_AT_WEEKS, IDETOX_DAYS, IDETOX_DONE, IDETOX_PATIENCE_DAYS, INTAKE_U,
                              MIN_ABSTINENCE_WEEKS,
                              MODALITY, MUTUAL_AID, PARKING_U, PATIENCE_DAYS, POST_EXIT_DAYS, POST_EXIT_RATIO, REHAB,
                              RE_ENTRY_U, RECODE_U, REHAB_AT_WEEKS, REHAB_DROP_WEEKS, REHAB_OUTCOME, REHAB_PATIENCE_DAYS, REHAB_WEEKS,
                              RELAPSE_DAYS, RELAPSE_U, REPRESENT_DELAY_WEEKS, REPRESENTS_AFTER_RELAPSE,
                              REPRESENTS_ON_RELEASE, SENTENCE_WEEKS, SIGNPOSTED_DAYS, SIGNPOSTED_MUTUAL_AID,
                              START_DELAY_DAYS, TRAINING, TRAINING_WEEKS, TRANSFER_DAYS, UNPLANNED_EXIT, WIDER_NEEDS,
                              PlanBlock,
                              Planner)
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
COMPLETE, STEP_DOWN, REHAB_DROP_OUT = (REHAB_OUTCOMES.index(o) for o in ("complete", "step_down", "drop_out"))
UNPLANNED = frozenset(UNPLANNED_EXITS)
STATE_AFTER_EXIT = {"planned": RECOVERED, **dict.fromkeys(UNPLANNED_EXITS, DISENGAGED), "transferred": TRANSFERRED,
                    "custody": IN_CUSTODY, "died": DIED}




def _when(planned: tuple) -> float:
    return planned[0]


class HorizonReached(Exception):
    """Raised instead of waiting past the end of the horizon: the client's process simply stops there."""


class Clocks:
    """The competing exit times of a treatment episode, as absolute days; the earliest wins."""

    __slots__ = ("planned", "drop_out", "transfer", "custody", "death", "abstinent_from", "drop_hazard",
                 "unplanned", "had_intensive")

    def next_exit(self) -> tuple[float, str]:
        return min((self.planned, "planned"), (self.drop_out, self.unplanned),
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
        self.planner = Planner(self.epochs, self.rng, provider=self.acting)
        self.multi_epoch = len(self.epochs) > 1
        self.replans = self.multi_epoch or self.acting  # plans may be made again (dated changes, band drift)
        self._pending: list[Client] = []  # clients whose next episode is in the next batch to plan
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
        return self.epoch_at(self.env.now)

    def epoch_at(self, t: float) -> int:
        """Index into ``epochs`` of the scenario in force on day ``t``."""
        return 0 if len(self.epochs) == 1 else bisect.bisect_right(self._epoch_starts, t) - 1

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
        (generated before the run, see :mod:`sim.engine.population`), a chunk of them at a time: at the first
        arrival of a chunk, each of its clients is given attributes, a first-episode plan and a life, whose first
        wait is the booking delay from the client's own referral day (a referral has no event of its own)."""
        times, ids = arrivals(self.scenario, self.seed)
        self._chunks = self._arrival_chunks(times, ids)
        self._next_chunk()

    def _arrival_chunks(self, times: np.ndarray, ids: np.ndarray, chunk: int = 1024):
        """(first day, [(day, client id, attributes, block, row, plan), ...]) of each chunk of arrivals:
        attributes and first-episode plans are computed a chunk at a time (see :mod:`sim.engine.plans`)."""
        planner = self.planner
        for at in range(0, len(ids), chunk):
            cid, t = ids[at:at + chunk], times[at:at + chunk]
            g, source = group_and_source(cid)
            rows = planner.draws(cid, 0)
            epoch = planner.epoch_at(t)
            attributes = planner.attributes(rows, g, source, epoch)
            block = PlanBlock(planner, rows, g, attributes[:, 5] > 0, epoch)
            plans = block.first()
            keep = block if self.replans else None  # kept to plan again under a later epoch or another band
            days = t.tolist()  # rows as lists in one call each: a row's own .tolist() costs as much as its use
            yield days[0], [(day, client, attrs, keep, i, plan) for i, (day, client, attrs, plan)
                            in enumerate(zip(days, cid.tolist(), attributes.tolist(), plans.tolist()))]

    def _next_chunk(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is not None:
            ev = self.env.timeout(chunk[0] - self.env.now, chunk[1])
            ev.callbacks.append(self._arrive)

    def _arrive(self, ev: simpy.Event) -> None:
        for t, cid, attributes, block, row, plan in ev.value:
            c = self.new_client(cid, t, attributes)
            c.block, c.row, c.plan = block, row, plan
            c.plan_epoch = 0 if block is None else int(block.referral_epoch[row])
            self._pending.append(c)
            ClientProcess(self.env, self.client_life(c))
        self._next_chunk()

    def new_client(self, cid: int, t: float, attributes: list[float]) -> Client:
        """A client first referred at ``t``, with the attributes of ``sim.engine.plans.ATTRIBUTES``."""
        g, s = group_and_source(cid)
        c = Client(cid, int(g), int(s), t)
        male, age, injecting, dual_diagnosis, housing_problem, criminal_justice, offending_rate = attributes
        c.male, c.age, c.injecting = male > 0, age, injecting > 0
        c.dual_diagnosis, c.housing_problem, c.criminal_justice = dual_diagnosis > 0, housing_problem > 0, \
            criminal_justice > 0
        c.offending_rate = offending_rate
        self.record.new_client(c)
        return c

    def plan(self, c: Client) -> list[float]:
        """The client's episode plan for a stage beginning now: planned again under the epoch now in force if
        that has changed (dated changes), or for the band now recorded if the provider changed it."""
        p = c.plan
        if self.multi_epoch or c.band != p[BAND]:
            e = self.epoch()
            if e != c.plan_epoch or c.band != p[BAND]:
                p = c.plan = c.block.under(c.row, e, c.band)
                c.plan_epoch = e
        return p

    def _plan_batch(self) -> None:
        """Plan, in one vectorised batch, the next episode of every client whose current episode has begun
        since the last batch (a client joins when an episode's referral is decided: the next episode is planned
        well before it can happen). A batch is planned only when a client's re-presentation is decided and no
        plan is waiting, so batches are as large as the run allows. The epoch in force at the next referral is
        not known yet: the plan assumes the one now in force, and is made again for the referral day's epoch if
        that is wrong (``_next_episode``)."""
        clients = [c for c in self._pending if c.state not in (DIED, TRANSFERRED)]
        self._pending = []
        planner = self.planner
        rows = planner.draws([c.id for c in clients], [c.episode + 1 for c in clients])
        epoch = np.full(len(clients), self.epoch())
        block = PlanBlock(planner, rows, np.array([c.g for c in clients], dtype=np.int64),
                          np.array([c.criminal_justice for c in clients]), epoch)
        plans = block.first()
        keep = block if self.replans else None
        for i, c in enumerate(clients):
            c.next = (keep, i, plans[i].copy())  # an array (a third of a list's size), a copy: the batch's is freed

    def _next_episode(self, c: Client, referral: float) -> None:
        """The client's next episode, referred on day ``referral`` (now, or later: its plan is its epoch's)."""
        if c.next is None:
            self._plan_batch()
        block, row, plan = c.next
        e = self.epoch_at(referral)
        if self.multi_epoch and e != block.referral_epoch[row]:
            block, row, plan = block.again(row, e), 0, None
            plan = block.first()[0]
        c.block, c.row, c.plan = block, row, plan.tolist()
        c.plan_epoch = 0 if block is None else int(block.referral_epoch[row])
        c.next = None
        c.episode += 1
        self._pending.append(c)

    def client_life(self, c: Client):
        """A client's whole life in the system, episode after episode, until death, transfer or the horizon.
        An episode begins at its referral day, which may be later than now: the first wait is the booking."""
        rec = self.record
        referral, source = c.first_referral, c.source
        try:
            while source is not None:
                rec.new_episode(c, referral, source)  # its referral, assessment, start, exit events: from the record
                rec.state(c, AWAITING_ASSESSMENT, referral)
                attends = yield from self.assessment(c)
                if c.band == NO_NEED:
                    after = self.signpost(c)
                elif not attends:
                    c.ep.exit, c.ep.exit_reason = self.env.now, "did_not_attend"
                    after = DISENGAGED
                elif self.responds() and not (yield from self.intake(c)):
                    after = DISENGAGED
                else:
                    after = yield from self.structured_treatment(c)
                if after == IN_CUSTODY:
                    after = yield from self.custody(c)
                    if after == "prison_release":
                        referral, source = self.env.now, SOURCE_PRISON
                        self._next_episode(c, referral)
                        continue
                referral, source = yield from self.after_exit(c, after)
                if source is not None:
                    self._next_episode(c, referral)
        except HorizonReached:
            pass
        c.plan = c.block = c.next = None  # the recorder keeps the client to the end; not their plans

    # --- assessment ------------------------------------------------------------------------------------------

    def assessment(self, c: Client):
        """LASARS assessment, independent of the provider.

        Enters at referral or re-presentation. Waits a booking delay from the referral day, then queues for an
        assessor (FIFO) and is assessed for the assessor's time. Scores two need domains (dependency; wider
        needs) and takes the more severe as the band. Leaves with the band set and whether the client will
        attend treatment.
        """
        env = self.env
        p = c.plan  # planned under the epoch in force at referral
        yield self.hold(c.ep.referral + p[BOOKING_DAYS])
        req = self.assessors.request()
        if req is not None:
            yield req
        c.ep.assessment_start = env.now
        yield self.hold(env.now + p[ASSESSMENT_DAYS])
        self.assessors.release()  # past the horizon the place stays held: nothing after it is reported
        dependency, wider = int(p[DEPENDENCY]), int(p[WIDER_NEEDS])
        c.band = int(p[BAND])
        ep = c.ep
        ep.assessed, ep.band, ep.dependency, ep.wider_needs = env.now, c.band, dependency, wider
        ep.assessed_band = c.band
        if self.responds():
            self.drift_band(c, p)
            p = self.plan(c)
        return p[ATTENDS] > 0

    def signpost(self, c: Client) -> int:
        """No need for structured treatment: brief advice and signposting to mutual aid, then out."""
        now = self.env.now
        c.ep.mutual_aid = self.plan(c)[SIGNPOSTED_MUTUAL_AID] > 0
        c.ep.exit, c.ep.exit_reason = now, "signposted"
        return SIGNPOSTED

    # --- structured treatment --------------------------------------------------------------------------------

    def structured_treatment(self, c: Client):
        """Structured treatment on a recovery worker's caseload, with any detox or rehab inside the episode.

        Enters after an assessment into a structured-need band. Waits the start delay, then for a caseload place
        (FIFO), leaving the waiting list after its patience if one is set. At the start takes the modality,
        mutual-aid engagement and the competing times to planned exit (free of dependence after at least 12
        weeks abstinent), drop-out, transfer, custody and death, and the planned community detox, inpatient
        detox or rehab from the episode's plan; whichever comes first happens. Leaves with the state to go to
        after treatment.
        """
        env, rec = self.env, self.record
        p = self.plan(c)
        rec.state(c, AWAITING_TREATMENT, env.now)
        delay = p[START_DELAY_DAYS]
        if self.responds():
            delay = self.throttled_delay(c, delay)
        yield self.hold(env.now + delay)
        req = self.caseload.request()
        if req is not None:
            give_up = env.now + p[PATIENCE_DAYS]
            if give_up > self.end:
                yield req
            else:
                if not (yield req, self.hold(give_up)):
                    self.caseload.leave_queue(req)
                    rec.event(c, env.now, "left_waiting_list", "caseload")
                    c.ep.exit, c.ep.exit_reason = env.now, "left_waiting_list"
                    return DISENGAGED
        p = self.plan(c)
        start = env.now
        ep = c.ep
        ep.treatment_start = start
        ep.modality = int(p[MODALITY])
        ep.mutual_aid = p[MUTUAL_AID] > 0
        rec.state(c, IN_TREATMENT, start)

        completion, drop_out = self.effort_at_start(c, start) if self.responds() else (1.0, 1.0)
        k = self.clocks(c, p, start, completion, drop_out)
        plan = self.plan_interventions(p, start)
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
        self._treatment_ended(c, start, epoch, k, now, reason == "planned")
        if reason == "died":
            self.die(c)
        if ep.modality == OST or k.had_intensive:
            c.raised_until = now + self.plan(c)[POST_EXIT_DAYS]
        return STATE_AFTER_EXIT[reason]

    def clocks(self, c: Client, p: list[float], start: float, completion_ratio: float = 1.0,
               drop_out_ratio: float = 1.0) -> Clocks:
        """The competing exit times of a new treatment episode, from its plan ``p``. The ratios (provider effort;
        1 without provider behaviour) multiply the completion and drop-out hazards."""
        k = Clocks()
        completion = start + DAYS_PER_WEEK * p[COMPLETION_WEEKS] / completion_ratio
        k.abstinent_from = max(start, completion - DAYS_PER_WEEK * p[ABSTINENT_WEEKS])
        k.planned = max(completion, k.abstinent_from + DAYS_PER_WEEK * p[MIN_ABSTINENCE_WEEKS])
        k.drop_hazard = hazard = p[DROP_HAZARD] * drop_out_ratio
        k.drop_out = start + p[DROP_E] / hazard if hazard > 0 else INF
        k.unplanned = UNPLANNED_EXITS[int(p[UNPLANNED_EXIT])]
        k.transfer = start + p[TRANSFER_DAYS]
        k.custody = start + p[CUSTODY_DAYS]
        k.death = self.death_time(c, p, E0, start)
        k.had_intensive = False
        return k

    def plan_interventions(self, p: list[float], start: float) -> list:
        """When the episode's community detox, inpatient detox and rehab (those its plan includes) begin."""
        plan = []
        if p[CDETOX] > 0:
            plan.append((start + DAYS_PER_WEEK * p[CDETOX_AT_WEEKS], self.community_detox))
        if p[IDETOX] > 0:
            plan.append((start + DAYS_PER_WEEK * p[IDETOX_AT_WEEKS], self.inpatient_detox))
        if p[REHAB] > 0:
            plan.append((start + DAYS_PER_WEEK * p[REHAB_AT_WEEKS], self.residential_rehab))
        if len(plan) > 1:
            plan.sort(key=_when)
        return plan

    def _after_abstinence_start(self, k: Clocks, p: list[float], abstinent_from: float) -> None:
        """A completed detox or a rehab step-down: aftercare in the community, then a planned exit."""
        now = self.env.now
        k.abstinent_from = abstinent_from
        k.planned = max(now + DAYS_PER_WEEK * p[AFTERCARE_WEEKS],
                        abstinent_from + DAYS_PER_WEEK * p[MIN_ABSTINENCE_WEEKS])
        k.set_drop_hazard(now, k.drop_hazard * p[AFTERCARE_DROP_RATIO])

    def _raise_mortality(self, c: Client, k: Clocks, p: list[float], e: int) -> None:
        """Loss of tolerance after a detox or rehab: the death time is drawn again with the raised risk."""
        c.raised_until = self.env.now + p[POST_EXIT_DAYS]
        k.death = self.death_time(c, p, e, self.env.now)
        k.had_intensive = True

    def community_detox(self, c: Client, k: Clocks):
        """Community detox, inside the treatment episode and on the caseload.

        Enters at its planned time. Lasts its duration unless an exit comes first. Completed: abstinent from
        the end, aftercare, then a planned exit. Not completed: back to community treatment as before.
        """
        env, rec = self.env, self.record
        p = self.plan(c)
        rec.state(c, COMMUNITY_DETOX, env.now)
        rec.event(c, env.now, "community_detox_start")
        end = env.now + p[CDETOX_DAYS]
        t_exit, _ = k.next_exit()
        if t_exit < end:
            yield self.hold(t_exit)
            return
        yield self.hold(end)
        completed = p[CDETOX_DONE] > 0
        rec.event(c, env.now, "community_detox_end", "completed" if completed else "not_completed")
        rec.state(c, IN_TREATMENT, env.now)
        if completed:
            self._after_abstinence_start(k, p, env.now)
        self._raise_mortality(c, k, p, E1)

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
        if (yield req, self.hold(until)):
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
        p = self.plan(c)
        admitted = yield from self._wait_for_place(c, k, self.detox_beds, p[IDETOX_PATIENCE_DAYS],
                                                   AWAITING_INPATIENT_DETOX, "inpatient_detox")
        if not admitted:
            return
        alive = yield from self._stay(c, k, self.detox_beds, INPATIENT_DETOX, "inpatient_detox_start",
                                      p[IDETOX_DAYS])
        if not alive:
            return
        completed = p[IDETOX_DONE] > 0
        rec.event(c, env.now, "inpatient_detox_end", "completed" if completed else "not_completed")
        rec.state(c, IN_TREATMENT, env.now)
        if completed:
            self._after_abstinence_start(k, p, env.now)
        self._raise_mortality(c, k, p, E2)

    def residential_rehab(self, c: Client, k: Clocks):
        """Residential rehab: limited places with a waiting list, early drop-out, step-down to the community.

        Enters at its planned time onto the waiting list (still in community treatment). Admitted: community
        clocks pause. Leaves by completing free of dependence (a planned exit once 12 weeks abstinent), stepping
        down to community aftercare, dropping out (an unplanned exit), or dying.
        """
        env, rec = self.env, self.record
        p = self.plan(c)
        admitted = yield from self._wait_for_place(c, k, self.rehab_places, p[REHAB_PATIENCE_DAYS],
                                                   AWAITING_REHAB, "rehab")
        if not admitted:
            return
        admission = env.now
        outcome = int(p[REHAB_OUTCOME])
        stay = DAYS_PER_WEEK * p[REHAB_WEEKS]
        if outcome == REHAB_DROP_OUT:
            stay = min(stay, DAYS_PER_WEEK * p[REHAB_DROP_WEEKS])
        alive = yield from self._stay(c, k, self.rehab_places, RESIDENTIAL_REHAB, "rehab_start", stay)
        if not alive:
            return
        now = env.now
        rec.event(c, now, "rehab_end", REHAB_OUTCOMES[outcome])
        self._raise_mortality(c, k, p, E3)
        if outcome == REHAB_DROP_OUT:
            k.unplanned = "dropped_out"
            k.drop_out = now  # an unplanned exit, straight from rehab
            return
        rec.state(c, IN_TREATMENT, now)
        if outcome == COMPLETE:
            k.abstinent_from = admission
            k.planned = max(now, admission + DAYS_PER_WEEK * p[MIN_ABSTINENCE_WEEKS])
        else:
            self._after_abstinence_start(k, p, admission)

    # --- custody and after exit -------------------------------------------------------------------------------

    def custody(self, c: Client):
        """Custody: treatment mirrors the community inside. Enters on transfer to custody. Leaves on release
        (re-presenting by the prison-release route, or out of treatment with raised mortality), or dies."""
        env, rec = self.env, self.record
        p = self.plan(c)
        rec.state(c, IN_CUSTODY, env.now)
        release = env.now + DAYS_PER_WEEK * p[SENTENCE_WEEKS]
        death = self.death_time(c, p, E4, env.now)
        if death < release:
            yield self.hold(death)
            self.die(c)
            return DIED
        yield self.hold(release)
        rec.event(c, env.now, "custody_release")
        c.raised_until = env.now + p[POST_EXIT_DAYS]
        if p[REPRESENTS_ON_RELEASE] > 0:
            return "prison_release"
        return DISENGAGED

    def after_exit(self, c: Client, state: int):
        """Out of treatment: decides the re-presentation, or waits for a death that comes first.

        Enters after an exit (recovered after a planned exit; disengaged after an unplanned exit, a missed
        start or a release from custody; signposted after a no-need assessment). Recovered clients relapse by
        a time-varying hazard (mutual aid lowers it); relapsed, disengaged and signposted clients may re-present
        at any time later, with no limit. A relapse and a re-presentation are decided when the exit is, with no
        SimPy event of their own: nothing waits for them. Returns the day and source of the next referral
        (the next assessment waits from that day), or (None, None) after death or a transfer out; raises
        :class:`HorizonReached` when the re-presentation would come after the horizon.
        """
        env, rec = self.env, self.record
        now = env.now
        rec.state(c, state, now)
        if state in (DIED, TRANSFERRED):
            return None, None
        p = self.plan(c)
        source = SOURCE_SELF
        if state == RECOVERED:
            death = self.death_time(c, p, E5, now, p[H_RECOVERED])
            relapse = now + p[RELAPSE_DAYS]
            if c.ep.discharge_shift_days > 0 and relapse < INF:
                relapse = self._relapse_after_hold(c, p)
            self._training(c, p, min(relapse, death))
            if death <= relapse:
                yield self.hold(death)
                self.die(c)
                return None, None
            if relapse > self.end:
                raise HorizonReached
            rec.event(c, relapse, "relapse")
            rec.state(c, RELAPSED, relapse)
            now = relapse
            p = self.plan_at(c, relapse)
            death = self.death_time(c, p, E6, now, p[H_OUT])
            returns = p[REPRESENTS_AFTER_RELAPSE] > 0
            nxt = now + DAYS_PER_WEEK * p[REPRESENT_DELAY_WEEKS] if returns else INF
            if returns and c.ep.exit_reason == "planned" and self.responds(now):
                nxt = self.defer_re_entry(c, nxt, now)
            arrest = self.arrest_time(c, p, now, RELAPSED)
            if arrest < nxt:
                nxt, source = arrest, SOURCE_ARREST
        elif state == DISENGAGED:
            death = self.death_time(c, p, E5, now, p[H_OUT])
            nxt = now + p[DISENGAGED_DAYS]
            arrest = self.arrest_time(c, p, now, DISENGAGED)
            if arrest < nxt:
                nxt, source = arrest, SOURCE_ARREST
        else:  # signposted
            death = self.death_time(c, p, E5, now, p[H_OUT])
            nxt = now + p[SIGNPOSTED_DAYS]
        c.plan = c.block = None  # nothing more is planned in this episode
        if death <= nxt:
            yield self.hold(death)
            self.die(c)
            return None, None
        if nxt > self.end:
            raise HorizonReached
        return nxt, source

    def arrest_time(self, c: Client, p: list[float], now: float, state: int) -> float:
        """When an active offender out of treatment is first arrested for a recorded offence and referred back
        into treatment (arrest referral, court order): the planned number of offences until then, at the
        client's untreated rate times the state's offending ratio, if within ``arrest_window_years`` of leaving
        (after it, an offender who has not come back has desisted or moved on); inf for a client who does not
        offend. An arrest brings a return forward, or brings back a client who would not have come back of their
        own accord, as a criminal-justice referral: so the criminal-justice share of returns follows offending."""
        if c.offending_rate <= 0 or p[ARREST_OFFENCES] == INF:
            return INF
        off = self.P().offending
        ratio = (off.relapsed if state == RELAPSED else off.after_drop_out).at(c.g, c.band).value
        if ratio <= 0:
            return INF
        after = DAYS_PER_YEAR * p[ARREST_OFFENCES] / (c.offending_rate * ratio)
        return now + after if after <= DAYS_PER_YEAR * self.P().after_exit.arrest_window_years else INF

    def plan_at(self, c: Client, t: float) -> list[float]:
        """The plan for a stage at a later day ``t`` that needs no SimPy event (a relapse)."""
        if not self.multi_epoch:
            return c.plan
        e = self.epoch_at(t)
        if e != c.plan_epoch:
            c.plan, c.plan_epoch = c.block.under(c.row, e, c.band), e
        return c.plan

    def _relapse_after_hold(self, c: Client, p: list[float]) -> float:
        """M4: a client held past readiness has already come through the held weeks abstinent: the relapse
        clock runs from readiness, given no relapse during the hold."""
        sc = self.P()
        g, b = c.g, c.band
        hr = sc.mutual_aid.relapse_ratio.at(g, b).value if c.ep.mutual_aid else 1.0
        q = 1.0 - (1.0 - p[RELAPSE_U]) ** (1.0 / hr)
        held = c.ep.discharge_shift_days
        relapse = sc.after_exit.relapse_years.at(g, b)
        survived = relapse.cdf(held / DAYS_PER_YEAR)
        return self.env.now - held + DAYS_PER_YEAR * relapse.ppf(survived + q * (1.0 - survived))

    def _training(self, c: Client, p: list[float], recovered_until: float) -> None:
        """Entering education, training or employment after a planned exit, while still recovered: recorded
        as an event, with no SimPy event of its own."""
        if p[TRAINING] > 0:
            t = self.env.now + DAYS_PER_WEEK * p[TRAINING_WEEKS]
            if t < recovered_until and t <= self.end:
                self.record.event(c, t, "entered_training")

    def die(self, c: Client) -> None:
        now = self.env.now
        self.record.event(c, now, "death", STATES[c.state])
        self.record.state(c, DIED, now)

    def death_time(self, c: Client, p: list[float], e: int, now: float, hazard: float | None = None) -> float:
        """Absolute time of death from ``now``, from the plan's unit exponential ``p[e]``, at the in-treatment
        hazard (or ``hazard``, per day), with the raised risk until ``c.raised_until``."""
        h = p[H_TREATMENT] if hazard is None else hazard
        if h <= 0:
            return INF
        x = p[e]
        if c.raised_until > now:
            hr = h * p[POST_EXIT_RATIO]
            early = hr * (c.raised_until - now)
            if x < early:
                return now + x / hr
            return c.raised_until + (x - early) / h
        return now + x / h

    # --- provider behaviour (sim.provider.model): only with a ProviderModel whose mode is not off -----------------

    def responds(self, t: float | None = None) -> bool:
        """Whether the provider may respond at day ``t`` (default now): the engine asks it nothing otherwise."""
        return self.acting and self.provider.responds(self.env.now if t is None else t)

    def drift_band(self, c: Client, plan: list[float]) -> None:
        """M6 band drift: where the provider assesses, a score near the next more severe band may be recorded
        in it. ``ep.assessed_band`` keeps the assessment's own band."""
        if c.band == 0:
            return
        now = self.env.now
        p = self.provider.band_drift_at(plan[DRIFT_DISTANCE], c.band, now)
        if p > 0 and plan[BAND_DRIFT_U] < p:
            self.record.event(c, now, "band_drift", BANDS[c.band - 1])
            c.band -= 1
            c.ep.band = c.band

    def intake(self, c: Client):
        """M1 cream-skimming: the provider accepts an assessed referral for a start, or deflects it.

        Enters after an assessment into a structured-need band. A deflected referral is either signposted out
        (an exit, ``deflected``; True is not returned) or delayed before the start. Leaves True to go on to
        structured treatment, False if turned away."""
        now = self.env.now
        u = self.plan(c)
        p = self.provider.accept_probability(c.band, now, u[BELIEF_Z])
        if p >= 1.0 or u[INTAKE_U] < p:
            return True
        signposted, delay = self.provider.deflection(u[DEFLECTION_U], u[DEFLECTION_DELAY_U])
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
        return self.provider.start_delay(c.band, self.env.now, delay, use, c.plan[BELIEF_Z])

    def effort_at_start(self, c: Client, start: float) -> tuple[float, float]:
        """M2 parking and M3 effort shift at the start of an episode: the multipliers on the completion and
        drop-out hazards. Parking (decided once for the episode) cuts contacts and positive outcomes and raises
        drop-out; effort shifted to exit work speeds completion, away from unpaid care loosens retention."""
        p = self.provider
        completion, drop_out = p.start_effort(c.band, start)
        parked = p.parking_probability(c.band, start, c.plan[BELIEF_Z])
        if parked > 0 and c.plan[PARKING_U] < parked:
            effects = p.parking_effects()
            completion *= effects.outcome_multiplier
            drop_out *= effects.drop_out_multiplier
            c.ep.parked = True
            self.record.event(c, start, "parked")
        return completion, drop_out

    def time_discharge(self, c: Client, k: Clocks, due: float) -> None:
        """M4 discharge timing, when a planned exit comes due: hold a clinically ready client while the
        sustained non-re-presentation outcome pays for it, or bring the discharge forward when only completion
        pays (never before the abstinence a planned exit needs); and hold one out of caution under the
        re-presentation test. A client held past readiness may decline to continue before the new date (an
        unplanned exit, recorded as declined)."""
        sc = self.P()
        g, b = c.g, c.band
        provider, plan = self.provider, c.plan
        shift = provider.discharge_shift(b, due, max(due - k.abstinent_from, 0.0),
                                         sc.after_exit.relapse_years.at(g, b),
                                         sc.after_exit.represent_after_relapse.at(g, b).value, plan[DISCHARGE_U])
        shift += provider.caution_hold(b, due, plan[CAUTION_U], plan[CAUTION_WEEKS_U])
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
        decline = provider.held_decline_per_week() if planned > due else 0.0
        if decline > 0.0:
            declines = due - DAYS_PER_WEEK * math.log1p(-plan[HELD_DECLINE_U]) / decline
            if declines < min(planned, k.drop_out):
                k.drop_out, k.unplanned = declines, "declined"

    def recode_exit(self, c: Client, reason: str) -> str:
        """M4 under stress: an unplanned exit recorded as a transfer out (the client is still disengaged)."""
        p = self.provider.recode_probability(self.env.now)
        if p > 0 and c.plan[RECODE_U] < p:
            self.record.event(c, self.env.now, "exit_recoded", reason)
            return "transferred"
        return reason

    def defer_re_entry(self, c: Client, due: float, now: float) -> float:
        """M4 under stress: a relapsed completer returning just before the sustained-outcome window closes is
        taken back only once it has closed (re-presentations bunch just after the window)."""
        window = self.provider.sustained_window()
        if window is None:
            return due
        closes = c.ep.exit + window
        p = self.provider.defer_probability(due, closes - due)
        if p > 0 and c.plan[RE_ENTRY_U] < p:
            self.record.event(c, now, "re_entry_deferred", f"{closes + 1.0 - due:.1f}")
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
        self.record.review_blocks += [tuple(part[name] for name in reviews.REVIEW_COLUMNS) for part in table]
        del table
        for row in events:
            self.record.add_event(*row)


def simulate(scenario: Scenario, seed: int | np.random.SeedSequence | None = None, progress=None,
             provider=None) -> History:
    """Simulate one replication of a scenario; ``seed`` defaults to the scenario's own. ``provider``: a
    :class:`sim.provider.model.ProviderModel` (see :func:`sim.experiments.providers.provider_model`) for a provider responding
    to its contract; None, or a behaviour mode of off, is the contract-blind model. Warns
    (:class:`sim.core.errors.UnsettledWarmupWarning`) when the warm-up is shorter than the scenario's
    ``horizon.settled_after_years``."""
    unsettled = scenario.horizon.unsettled(scenario.name)
    if unsettled:
        warnings.warn(unsettled, UnsettledWarmupWarning, stacklevel=2)
    return TreatmentSystem(scenario, seed, provider).run(progress)

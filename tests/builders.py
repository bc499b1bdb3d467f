"""Shared test helpers: the one hand-built History (``Build``) and the one small West Kent (``small_scenario``).

``Build`` makes a History by hand, through the Recorder, with no SimPy; ``small_scenario`` is West Kent on a short
horizon, for tests that need a real but quick run. Session-scoped fixtures over both live in ``tests/conftest.py``.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import numpy as np

from sim.config.scenario import Horizon
from sim.core.vocabulary import BANDS, GROUPS, REVIEW_STAGES, STATES, USE_AT_REVIEW
from sim.engine.history import Client, Recorder

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
WEST_KENT = SCENARIOS / "west_kent.toml"
# the end of a test's scenario file that extends West Kent for a one-year run: the shipped provider responds to
# its contract, which needs more than a reported year; the engine's and the commands' tests run it contract-blind
CONTRACT_BLIND = '[behaviour]\nmode = "off"\n'

S = {name: i for i, name in enumerate(STATES)}
CONTRACT_START = dt.date(2012, 4, 1)  # as West Kent: 2012-13 is day 0 to 365, 2013-14 day 365 to 730
AFTER_EXIT = {"planned": "recovered", "dropped_out": "disengaged", "died": "died", "transferred": "transferred",
              "declined": "disengaged"}


class Build:
    """A History by hand, through ``sim.engine.history.Recorder`` as the pathway records one.

    ``episode`` refers, assesses on the same day (into ``band``), starts treatment at ``start`` and exits at
    ``exit`` for ``reason``, recording the states as it goes; a later ``episode`` of the same client is a
    re-presentation. ``review`` appends one TOP review row of the client's current episode.
    """

    def __init__(self, contract_start: dt.date = CONTRACT_START):
        self.rec = Recorder()
        self.history = None
        self.contract_start = contract_start
        self.rec.capacity += [("caseload", -1000.0, 100), ("assessors", -1000.0, 3)]
        self.by_id: dict[int, Client] = {}

    def client(self, cid, group="opiate", rate=0.0, injecting=False, housing=False) -> Client:
        c = Client(cid, GROUPS.index(group), 0, np.nan)
        c.male, c.age, c.injecting, c.dual_diagnosis, c.housing_problem = True, 30.0, injecting, False, housing
        c.criminal_justice, c.offending_rate = rate > 0, float(rate)
        self.rec.new_client(c)
        self.by_id[cid] = c
        return c

    def episode(self, c: Client, referral, band="moderate", start=None, exit=None, reason="planned"):
        if c.ep is None:
            c.first_referral = float(referral)
        else:
            c.episode += 1
        ep = self.rec.new_episode(c, float(referral), 0)
        self.rec.event(c, float(referral), "referral" if c.episode == 0 else "re_presentation")
        self.rec.state(c, S["awaiting_assessment"], float(referral))
        ep.assessed, ep.band = float(referral), BANDS.index(band)
        self.rec.event(c, float(referral), "assessed", band)
        self.rec.state(c, S["awaiting_treatment"], float(referral))
        if start is not None:
            ep.treatment_start, ep.modality = float(start), 0
            self.rec.event(c, float(start), "treatment_start", "ost")
            self.rec.state(c, S["in_treatment"], float(start))
        if exit is not None:
            ep.exit, ep.exit_reason = float(exit), reason
            self.rec.event(c, float(exit), "exit", reason)
            if reason == "died":
                self.rec.event(c, float(exit), "death", "in_treatment")
            self.rec.state(c, S[AFTER_EXIT[reason]], float(exit))
        return ep

    def review(self, c: Client, t, stage="review", completed=True, use="abstinent", injecting=False,
               housing=False, qol=16, number=1, episode=None):
        one = lambda v, dtype: np.array([v], dtype=dtype)
        self.rec.review_blocks.append((
            one(c.id, np.int64), one(c.episode if episode is None else episode, np.int64), one(float(t), float),
            one(0 if stage == "start" else number, np.int64), one(completed, bool),
            one(USE_AT_REVIEW.index(use), np.int64), one(injecting, bool), one(False, bool), one(housing, bool),
            one(qol, np.int64), one(REVIEW_STAGES.index(stage), np.int64), one(False, bool)))

    def event(self, c: Client, t, kind, detail=""):
        self.rec.event(c, float(t), kind, detail)

    def die(self, c: Client, t):
        self.rec.event(c, float(t), "death", STATES[c.state])
        self.rec.state(c, S["died"], float(t))

    def finish(self, years=2, warmup=2.0, seed=7):
        """The History (built once: a Recorder finishes once)."""
        if self.history is None:
            horizon = Horizon(contract_start=self.contract_start, years=years, warmup_years=warmup)
            self.history = (years, warmup, seed), self.rec.finish(horizon.end_day, horizon, "hand",
                                                                   np.random.SeedSequence(seed))
        assert self.history[0] == (years, warmup, seed), "finish once per Build, with one horizon"
        return self.history[1]


@lru_cache(maxsize=1)
def west_kent():
    """The shipped West Kent scenario, loaded once (a Scenario is immutable: ``with_changes`` returns a new one)."""
    from sim import load_scenario

    return load_scenario(WEST_KENT)


def small_scenario(years=2, warmup_years=2, **changes):
    """West Kent with ``warmup_years`` of warm-up and ``years`` reported years, and any other ``changes`` (dotted
    keys, e.g. ``small_scenario(1, **{"capacity.assessors": 2})``): every stage runs, in about a second a year.
    The provider is contract-blind (``behaviour.mode`` off) unless ``changes`` say otherwise: the shipped one
    responds to its contract, which needs more than a reported year and a pilot run for its beliefs."""
    return west_kent().with_changes({"horizon.warmup_years": warmup_years, "horizon.years": years,
                                     "behaviour.mode": "off", **changes})

"""What happened, as tidy tables. The simulation records; it computes no measures and no money.

Times are simulation days since the contract start (negative in the warm-up); ``History.date(t)`` converts.

Tables (pandas DataFrames, one row per ...):

``clients``  — person: ``client_id`` (stable: arrival stream x 1,000,000 + sequence), ``group``, ``male``,
    ``age`` (years at first referral), ``injecting``, ``dual_diagnosis``, ``housing_problem``,
    ``criminal_justice``, ``offending_rate`` (offences/year when untreated; 0 for non-offenders),
    ``source`` (of the first referral), ``first_referral`` (day), ``band`` (at the first assessment, or empty),
    ``stock`` (True if first referred before the contract start).
``episodes`` — referral (first or re-presentation): ``client_id``, ``episode`` (0 = first), ``referral``
    (day), ``source``, ``assessed`` (day), ``band``, ``dependency_domain``, ``wider_needs_domain``,
    ``treatment_start`` (day), ``modality``, ``mutual_aid``, ``exit`` (day), ``exit_reason`` (see
    ``vocabulary.EXIT_REASONS``, plus ``signposted``, ``did_not_attend``, ``left_waiting_list`` and
    ``deflected``); and what provider behaviour (``sim.provider.model``) did: ``assessed_band`` (the band the
    assessment itself gave; ``band`` differs only after band drift), ``deflected`` (not accepted for a start),
    ``parked`` (reduced keyworking), ``discharge_shift_days`` (a planned exit held, +, or brought forward, -).
    Missing values (NaN, empty) mean "did not happen before the end of the horizon".
``spells``   — time a client spent in one state: ``client_id``, ``episode``, ``state``, ``start``, ``end``
    (days), ``censored`` (True if still in the state at the end of the horizon). Spells of a client tile
    [first referral, end of horizon] without gaps or overlaps.
``events``   — dated happenings: ``client_id``, ``episode``, ``time`` (day), ``kind`` (one of
    ``vocabulary.EVENT_KINDS``, which says what each means), ``detail``.
``reviews``  — TOP reviews due: ``client_id``, ``episode``, ``time``, ``number`` (0 = at start),
    ``completed``, ``use`` (abstinent / improved / neither), ``injecting``, ``offending`` (any offence in the
    previous 28 days), ``housing_problem``, ``quality_of_life`` (0-20), ``stage`` (start, review, exit),
    ``misrecorded`` (an unfavourable answer recorded favourably by a provider gaming the measure). Only
    completed reviews are evidence.
``capacity`` — capacity in force: ``resource``, ``time`` (day from which it holds), ``capacity`` (places).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import os
import tempfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.core.errors import UserError
from sim.core.folders import OutputFolder
from sim.core.vocabulary import (BANDS, EVENT_KINDS, GROUPS, MODALITIES, REVIEW_STAGES, SOURCES, STATES,
                                 TREATMENT_EXITS, USE_AT_REVIEW)

_KIND_CODE = {kind: i for i, kind in enumerate(EVENT_KINDS)}
TABLES = ("clients", "episodes", "spells", "events", "reviews", "capacity")


class Client:
    """A person's fixed attributes and their open spell in the recorder. Once a re-presentation is decided (at
    the exit) the open spell, ``episode`` and ``ep`` are already the next episode's, from its referral day on:
    during a run, ``state`` is not where the client is now."""

    __slots__ = ("id", "g", "source", "male", "age", "injecting", "dual_diagnosis", "housing_problem",
                 "criminal_justice", "offending_rate", "first_referral", "episode", "state", "since",
                 "spell_episode", "band", "raised_until", "ep", "block", "row", "plan", "plan_epoch", "next")

    def __init__(self, cid: int, g: int, source: int, t: float):
        self.id, self.g, self.source, self.first_referral = cid, g, source, t
        self.episode = 0
        self.state = -1
        self.since = t
        self.spell_episode = 0  # the episode the open spell belongs to (set when it opens)
        self.band = -1
        self.raised_until = -np.inf
        self.ep = None
        # the current episode's plan (sim.engine.plans): its batch, row, columns and the epoch they hold for
        self.block = self.row = self.plan = None
        self.plan_epoch = 0
        self.next = None  # the next episode's (block, row, plan), once planned before a re-presentation


class Episode:
    __slots__ = ("client_id", "episode", "referral", "source", "assessed", "band", "dependency", "wider_needs",
                 "treatment_start", "modality", "mutual_aid", "exit", "exit_reason", "assessed_band", "deflected",
                 "parked", "discharge_shift_days", "assessment_start")

    def __init__(self, client_id: int, episode: int, referral: float, source: int):
        self.client_id, self.episode, self.referral, self.source = client_id, episode, referral, source
        self.assessed = self.treatment_start = self.exit = self.assessment_start = np.nan
        self.band = self.dependency = self.wider_needs = self.modality = self.assessed_band = -1
        self.mutual_aid = self.deflected = self.parked = False
        self.exit_reason = ""
        self.discharge_shift_days = 0.0


MAX_EPISODES = 6_000_000  # referrals one run may record (about 1.5 KiB each with their spells and events: 9 GB)


class RunTooLarge(UserError):
    """A run that would outgrow the machine: far more referrals than its first referrals explain."""


class Recorder:
    """Appends rows during a run; builds the History tables once at the end.

    Spells and events are kept as typed columns (``array.array``), not lists of tuples: a few bytes a row
    instead of a hundred, which is most of a run's memory."""

    def __init__(self):
        self.clients: list[Client] = []
        self.episodes: list[Episode] = []
        self._spells = array("d")  # client_id, episode, state, start, end: five numbers a spell (exact as doubles)
        self._events = tuple(array(code) for code in "qldhh")  # client_id, episode, time, kind, detail
        self._details: dict[str, int] = {"": 0}
        self.review_blocks: list[tuple[np.ndarray, ...]] = []  # columns in _REVIEW_COLUMNS order
        self.capacity: list[tuple] = []
        self._finished = False
        self._columns = None  # the episodes' columns, when the History is built

    def new_client(self, c: Client) -> None:
        self.clients.append(c)

    def new_episode(self, c: Client, t: float, source: int) -> Episode:
        if len(self.episodes) >= MAX_EPISODES:
            raise RunTooLarge(f"the run reached {MAX_EPISODES:,} referrals (first referrals and re-presentations) "
                              f"by day {t:,.0f}: more than one machine can hold; a re-presentation, re-referral or "
                              f"custody rate is probably far too high")
        ep = Episode(c.id, c.episode, t, source)
        self.episodes.append(ep)
        c.ep = ep
        return ep

    def state(self, c: Client, state: int, t: float) -> None:
        """The client enters ``state`` at ``t``, closing the spell they were in."""
        if c.state >= 0 and t > c.since:
            self._spells.extend((c.id, c.spell_episode, c.state, c.since, t))
        c.state, c.since, c.spell_episode = state, t, c.episode

    def _spell(self, c: Client, end: float) -> None:
        """Record the client's current spell as ending at ``end``."""
        self._spells.extend((c.id, c.spell_episode, c.state, c.since, end))

    def event(self, c: Client, t: float, kind: str, detail: str = "") -> None:
        self.add_event(c.id, c.episode, t, kind, detail)

    def add_event(self, client_id: int, episode: int, t: float, kind: str, detail: str = "") -> None:
        ids, eps, times, kinds, details = self._events
        ids.append(client_id)
        eps.append(episode)
        times.append(t)
        kinds.append(_KIND_CODE[kind])
        code = self._details.get(detail)
        if code is None:
            code = self._details[detail] = len(self._details)
        details.append(code)

    def finish(self, end: float, horizon, scenario_name: str, seed) -> History:
        """The History. A recorder finishes once: its columns are released as each table is built, which keeps
        a run's peak memory down."""
        if self._finished:
            raise RuntimeError("this Recorder has already built its History")
        self._finished = True
        reviews = _reviews_frame(self.review_blocks)  # first: the table is smaller than its blocks
        self.review_blocks = []
        n_closed = len(self._spells) // 5
        for c in self.clients:
            if c.state >= 0:
                self._spell(c, end)
        spells = _spells_frame(self._spells, n_closed)
        self._spells = ()
        live, self._events = list(self._events), ()
        events = _events_frame(live, self._episode_events(), list(self._details))
        return History(
            clients=self._clients(),
            episodes=self._episodes(),
            spells=spells,
            events=events,
            reviews=reviews,
            capacity=pd.DataFrame(self.capacity, columns=["resource", "time", "capacity"]),
            contract_start=horizon.contract_start, start=horizon.start_day, end=end,
            scenario=scenario_name, seed=seed,
        )

    def _detail(self, detail: str) -> int:
        code = self._details.get(detail)
        if code is None:
            code = self._details[detail] = len(self._details)
        return code

    def _episode_events(self) -> list[np.ndarray]:
        """The events every episode's record already dates (``EPISODE_EVENTS``: referral, assessment, start,
        exit...), written in arrays from the episodes rather than one by one as they happen."""
        es = self._episode_columns()
        col = lambda name, dtype=float: np.array(es[name], dtype=dtype)  # noqa: E731
        ids, eps = col("client_id", np.int64), col("episode", np.int64)
        referral, assessment_start, assessed = col("referral"), col("assessment_start"), col("assessed")
        start, exit_, reason = col("treatment_start"), col("exit"), col("exit_reason", object)
        source, band, modality = col("source", np.int64), col("assessed_band", np.int64), col("modality", np.int64)
        mutual_aid = col("mutual_aid", bool)
        started = ~np.isnan(start)
        codes = lambda names, which: np.array([self._detail(x) for x in names], dtype=np.int64)[which]  # noqa
        parts = [  # (rows, time, kind, detail codes)
            (eps == 0, referral, "referral", codes(SOURCES, source)),
            (eps > 0, referral, "re_presentation", codes(SOURCES, source)),
            (~np.isnan(assessment_start), assessment_start, "assessment_start", 0),
            (~np.isnan(assessed), assessed, "assessed", codes(BANDS, np.maximum(band, 0))),
            (reason == "signposted", exit_, "signposted", np.where(mutual_aid, self._detail("mutual_aid"), 0)),
            (reason == "did_not_attend", exit_, "did_not_attend", 0),
            (started, start, "treatment_start", codes(MODALITIES, np.maximum(modality, 0))),
            (started & mutual_aid, start, "mutual_aid_engaged", 0),
            (started & np.isin(reason, TREATMENT_EXITS), exit_, "exit",
             np.array([self._detail(x) for x in reason.tolist()], dtype=np.int64)),
        ]
        out = []
        for i, dtype in enumerate((np.int64, np.int32, float, np.int16, np.int16)):
            pieces = []
            for rows, time, kind, detail in parts:
                values = (ids, eps, time, None, np.broadcast_to(detail, rows.shape))[i]
                pieces.append(np.full(int(rows.sum()), _KIND_CODE[kind], dtype=dtype) if values is None
                              else values[rows].astype(dtype))
            out.append(np.concatenate(pieces))
        return out

    def _clients(self) -> pd.DataFrame:
        cs = self.clients
        df = pd.DataFrame({
            "client_id": np.array([c.id for c in cs], dtype=np.int64),
            "group": pd.Categorical.from_codes([c.g for c in cs], GROUPS),
            "male": np.array([c.male for c in cs], dtype=bool),
            "age": np.array([c.age for c in cs], dtype=float),
            "injecting": np.array([c.injecting for c in cs], dtype=bool),
            "dual_diagnosis": np.array([c.dual_diagnosis for c in cs], dtype=bool),
            "housing_problem": np.array([c.housing_problem for c in cs], dtype=bool),
            "criminal_justice": np.array([c.criminal_justice for c in cs], dtype=bool),
            "offending_rate": np.array([c.offending_rate for c in cs], dtype=float),
            "source": pd.Categorical.from_codes([c.source for c in cs], SOURCES),
            "first_referral": np.array([c.first_referral for c in cs], dtype=float),
        })
        first_band = {e.client_id: e.band for e in self.episodes if e.episode == 0}
        df["band"] = pd.Categorical.from_codes([first_band.get(c.id, -1) for c in cs], BANDS)
        df["stock"] = df["first_referral"] < 0
        return df.sort_values("client_id", ignore_index=True)

    def _episode_columns(self) -> dict[str, tuple]:
        """The episodes' records as columns, extracted once."""
        if self._columns is None:
            values = zip(*map(operator.attrgetter(*Episode.__slots__), self.episodes))
            self._columns = dict(zip(Episode.__slots__, values)) if self.episodes else \
                {name: () for name in Episode.__slots__}
        return self._columns

    def _episodes(self) -> pd.DataFrame:
        es = self._episode_columns()
        col = es.__getitem__
        df = pd.DataFrame({
            "client_id": np.array(col("client_id"), dtype=np.int64),
            "episode": np.array(col("episode"), dtype=np.int64),
            "referral": np.array(col("referral"), dtype=float),
            "source": pd.Categorical.from_codes(col("source"), SOURCES),
            "assessed": np.array(col("assessed"), dtype=float),
            "band": pd.Categorical.from_codes(col("band"), BANDS),
            "dependency_domain": pd.Categorical.from_codes(col("dependency"), BANDS),
            "wider_needs_domain": pd.Categorical.from_codes(col("wider_needs"), BANDS),
            "treatment_start": np.array(col("treatment_start"), dtype=float),
            "modality": pd.Categorical.from_codes(col("modality"), MODALITIES),
            "mutual_aid": np.array(col("mutual_aid"), dtype=bool),
            "exit": np.array(col("exit"), dtype=float),
            "exit_reason": pd.Series(col("exit_reason"), dtype="string"),
            "assessed_band": pd.Categorical.from_codes(col("assessed_band"), BANDS),
            "deflected": np.array(col("deflected"), dtype=bool),
            "parked": np.array(col("parked"), dtype=bool),
            "discharge_shift_days": np.array(col("discharge_shift_days"), dtype=float),
        })
        return df.sort_values(["client_id", "episode"], ignore_index=True)


def _column(values: array) -> np.ndarray:
    """A recorded column as numpy, without a copy (the array's own buffer)."""
    return np.frombuffer(values, dtype=values.typecode) if len(values) else np.array([], dtype=values.typecode)


def _spells_frame(rows: array, n_closed: int) -> pd.DataFrame:
    table = _column(rows).reshape(-1, 5)
    ids, eps, states, starts, ends = (table[:, i] for i in range(5))
    ids, eps, states = ids.astype(np.int64), eps.astype(np.int64), states.astype(np.int8)
    order = np.lexsort((starts, ids))  # by client, then start (a client's spells never share a start)
    return pd.DataFrame({
        "client_id": ids[order].astype(np.int64),
        "episode": eps[order].astype(np.int64),
        "state": pd.Categorical.from_codes(states[order], STATES),
        "start": starts[order],
        "end": ends[order],
        "censored": order >= n_closed,
    })


# A client's events on the same day are in the order of the pathway (a first referral before its assessment,
# an exit before the death it records, a release before the re-presentation it leads to)
EVENT_ORDER = ("referral", "re_presentation", "assessment_start", "assessed", "band_drift", "deflected",
               "signposted", "did_not_attend", "left_waiting_list", "treatment_start", "mutual_aid_engaged", "parked",
               "bbv_test", "hep_b_course_start", "hep_b_course_complete", "community_detox_start",
               "community_detox_end", "inpatient_detox_referral", "inpatient_detox_start", "inpatient_detox_end",
               "rehab_referral", "rehab_start", "rehab_end", "discharge_held", "discharge_fast_tracked",
               "exit_recoded", "exit", "custody_release", "relapse", "re_entry_deferred", "entered_training", "death")
_RANK = np.array([EVENT_ORDER.index(kind) for kind in EVENT_KINDS])


def _events_frame(live: list, derived: list, details: list[str]) -> pd.DataFrame:
    """The events table from the recorded columns and those derived from the episodes (both lists are emptied
    as their columns are used, to keep the peak memory down)."""
    dtypes = (np.int64, np.int64, float, np.int16, np.int16)
    cols = []
    for dtype in dtypes:
        cols.append(np.concatenate([_column(live.pop(0)).astype(dtype), derived.pop(0).astype(dtype)]))
    ids, eps, times, kinds, detail = cols
    del cols
    order = np.lexsort((_RANK[kinds], eps, ids, times))  # by time, client, episode, then the pathway
    frame = {"client_id": ids[order]}
    del ids
    frame["episode"] = eps[order]
    del eps
    frame["time"] = times[order]
    del times
    frame["kind"] = pd.Categorical.from_codes(kinds[order], categories=list(EVENT_KINDS))
    del kinds
    frame["detail"] = pd.Series(np.array(details, dtype=object)[detail[order]], dtype="string")
    return pd.DataFrame(frame, copy=False)


_REVIEW_COLUMNS = ("client_id", "episode", "time", "number", "completed", "use", "injecting", "offending",
                   "housing_problem", "quality_of_life", "stage", "misrecorded")


def _reviews_frame(blocks: list[tuple[np.ndarray, ...]]) -> pd.DataFrame:
    """The reviews table from blocks of columns (the list is emptied as they are used: peak memory)."""
    dtypes = (np.int64, np.int64, float, np.int64, bool, np.int8, bool, bool, bool, np.int64, np.int8, bool)
    parts = [list(b) for b in blocks]
    blocks.clear()

    def column(i: int) -> np.ndarray:  # one column at a time, each block's piece released once it is used
        if not parts:
            return np.array([], dtype=dtypes[i])
        pieces = []
        for b in parts:
            pieces.append(np.asarray(b[i], dtype=dtypes[i]))
            b[i] = None
        return np.concatenate(pieces)

    keys = {name: column(_REVIEW_COLUMNS.index(name)) for name in ("client_id", "episode", "number")}
    order = np.lexsort((keys["number"], keys["episode"], keys["client_id"]))
    frame = {}
    for i, name in enumerate(_REVIEW_COLUMNS):
        values = (keys.pop(name) if name in keys else column(i))[order]
        if name == "use":
            values = pd.Categorical.from_codes(values, USE_AT_REVIEW)
        elif name == "stage":
            values = pd.Categorical.from_codes(values, REVIEW_STAGES)
        frame[name] = values
    return pd.DataFrame(frame, copy=False)


@dataclass
class History:
    """The tidy tables of one simulated run (see the module docstring for columns and units)."""

    clients: pd.DataFrame
    episodes: pd.DataFrame
    spells: pd.DataFrame
    events: pd.DataFrame
    reviews: pd.DataFrame
    capacity: pd.DataFrame
    contract_start: dt.date
    start: float  # warm-up start (day)
    end: float    # end of the horizon (day)
    scenario: str = ""
    seed: object = None
    meta: dict = field(default_factory=dict)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_derived", None)  # tables derived on demand (see ``derived``) are not shipped
        return state

    def date(self, t: float | np.ndarray):
        """Calendar date(s) of simulation day(s) ``t``."""
        base = np.datetime64(self.contract_start, "D")
        return base + np.floor(np.asarray(t)).astype("timedelta64[D]")

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    def write(self, directory: str | Path, formats: tuple[str, ...] = ("parquet", "csv")) -> None:
        """Write every table as ``<table>.<format>``. Files appear whole or not at all."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables().items():
            for fmt in formats:
                target = directory / f"{name}.{fmt}"
                write_atomic(target, lambda p, df=df, fmt=fmt: (
                    df.to_parquet(p, index=False) if fmt == "parquet" else df.to_csv(p, index=False)))


def derived(compute):
    """Keep what a pure function of a History (and other fixed arguments) returns on that History, and hand
    out copies: a History never changes after its run, and settling one History under many contracts (a tariff
    changed in the web app, a comparison, a sweep of contract terms) needs its achievements, costs and offending
    cohorts again and again. Plain arguments are told apart by value, objects such as a Scenario by equality
    (the entry keeps them)."""

    def plain(value) -> bool:
        return isinstance(value, (str, int, float, bool, type(None)))

    @functools.wraps(compute)
    def wrapper(history: History, *args, **kwargs):
        cache = history.__dict__.setdefault("_derived", {})
        values = (*args, *(kwargs[k] for k in sorted(kwargs)))
        key = (compute.__qualname__, tuple(sorted(kwargs)), tuple(v if plain(v) else type(v).__name__ for v in values))
        objects = [v for v in values if not plain(v)]
        entries = cache.setdefault(key, [])
        for kept, result in entries:
            if all(a is b or a == b for a, b in zip(kept, objects)):
                break
        else:
            result = compute(history, *args, **kwargs)
            entries.append((objects, result))
        return result.copy() if isinstance(result, (pd.DataFrame, pd.Series)) else result

    return wrapper


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: the process's umask, for the files written below


def write_atomic(target: Path, write) -> None:
    """Call ``write(temp_path)`` then rename over ``target``: readers never see a half-written file."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def replace_directory(target: Path | OutputFolder, build, kind: str = "results") -> Path:
    """Build a directory's contents in a temporary sibling, then swap it in whole (see :mod:`sim.core.folders`: the
    target is checked and locked first, and only a pbrsim results folder is ever replaced). ``target`` may be an
    :class:`~sim.core.folders.OutputFolder` opened (checked and locked) before the run began."""
    if isinstance(target, OutputFolder):
        return target.replace(build)
    with OutputFolder(target, kind) as folder:
        return folder.replace(build)

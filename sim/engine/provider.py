"""The seam between the engine and the provider: what the engine asks a provider, and the contract-blind one.

The engine owns the clients, their random numbers, the queues and the record; the provider owns its decisions.
At each decision point the engine asks :meth:`Provider.responds` and, only if it does, asks for the decision's
probability or numbers, draws against it from the decision's own stream (planned with the episode,
``sim.engine.plans.PROVIDER_COLUMNS``) and records what happened. It asks about one client at a time. The
decisions, in the order a client meets them:

=====================  ===================================================  ==========================
when                   the engine asks                                      mechanism
=====================  ===================================================  ==========================
at assessment          ``band_drift_at(distance, band, day)``               M6 band drift
at intake              ``accept_probability(band, day, belief)``, then      M1 cream-skimming
                       ``deflection(u_fate, u_delay)``
before a start         ``start_delay(band, day, delay, caseload_use,        M5 gatekeeping, M7 freezes
                       belief)``
effort at start        ``start_effort(band, day)``,                         M3 effort, M2 parking
                       ``parking_probability(band, day, belief)``,
                       ``parking_effects()``
discharge timing       ``discharge_shift(band, due, abstinent_days,         M4 hold or fast-track
                       relapse_years, represent_probability, u)``,
                       ``caution_hold(band, due, u, u_weeks)``,             M4 caution
                       ``held_decline_per_week()``
exit recording         ``recode_probability(day)``                          M4 recoding
re-entry               ``sustained_window()``, ``defer_probability(day,     M4 deferral
                       days_to_window_end)``
review effects         ``review_effects(bands, starts)``                    M3 review gaming
=====================  ===================================================  ==========================

:class:`sim.provider.model.ProviderModel` implements it; :data:`CONTRACT_BLIND` is the provider that never
responds (behaviour off, or nothing at risk), and costs the engine one attribute test per decision point.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Protocol, runtime_checkable


@runtime_checkable
class Provider(Protocol):
    """What the engine asks a provider (see the module's table). ``day``: days since the contract start."""

    def acts_before(self, day: float) -> bool:
        """Whether the provider may respond at all before ``day`` (the end of the run): False lets the engine
        run the contract-blind model at its speed."""

    def responds(self, day: float) -> bool:
        """Whether the provider may respond at ``day`` (it does not before the contract starts)."""

    def band_drift_at(self, distance: float, band: int, day: float) -> float:
        """M6: the chance the band is recorded one more severe than assessed, for a band-setting domain score
        ``distance`` bands from the next more severe band (``sim.provider.decisions.threshold_distance``)."""

    def accept_probability(self, band: int, day: float, belief: float) -> float:
        """M1: the chance an assessed referral is accepted for a start."""

    def deflection(self, u_fate: float, u_delay: float) -> tuple[bool, float]:
        """M1: a deflected referral's fate: (signposted out, else the delay in days before its start)."""

    def start_delay(self, band: int, day: float, delay: float, caseload_use: float, belief: float) -> float:
        """M5 and M7: the start delay after gatekeeping and any intake freeze."""

    def start_effort(self, band: int, day: float) -> tuple[float, float]:
        """M3: multipliers on the completion and the drop-out hazards from the effort mix."""

    def parking_probability(self, band: int, day: float, belief: float) -> float:
        """M2: the chance the episode is parked."""

    def parking_effects(self):
        """M2: what parking does (``outcome_multiplier``, ``drop_out_multiplier``, ...)."""

    def discharge_shift(self, band: int, due: float, abstinent_days: float, relapse_years, represent_probability:
                        float, u: float) -> float:
        """M4: days added to (held) or taken from (fast-tracked) a planned discharge due at ``due``."""

    def caution_hold(self, band: int, due: float, u: float, u_weeks: float) -> float:
        """M4 caution: days a client ready for a planned exit due at ``due`` is held because the contract pays a
        sustained non-re-presentation outcome (0: not held)."""

    def held_decline_per_week(self) -> float:
        """M4 caution: the hazard (per week) that a client held past readiness declines to continue."""

    def recode_probability(self, day: float) -> float:
        """M4: the chance an unplanned exit is recorded as a transfer out."""

    def sustained_window(self) -> float | None:
        """M4: the window (days after a planned exit) of the sustained outcome, if the contract pays one."""

    def defer_probability(self, day: float, days_to_window_end: float) -> float:
        """M4: the chance a returning completer's re-entry is put off past the window."""

    def review_effects(self, bands, starts):
        """M3: what the provider does to TOP reviews of episodes of ``bands`` starting on ``starts``."""


class ContractBlind:
    """The provider that never responds to its contract: every answer is the neutral one (probability 0 or 1,
    multiplier 1, no shift), so asking it would change nothing; the engine, seeing :meth:`responds` False, does
    not ask (nor draws the decisions' random numbers)."""

    def acts_before(self, day: float) -> bool:
        return False

    def responds(self, day: float) -> bool:
        return False

    def band_drift_at(self, distance: float, band: int, day: float) -> float:
        return 0.0

    def accept_probability(self, band: int, day: float, belief: float) -> float:
        return 1.0

    def deflection(self, u_fate: float, u_delay: float) -> tuple[bool, float]:
        return False, 0.0

    def start_delay(self, band: int, day: float, delay: float, caseload_use: float, belief: float) -> float:
        return delay

    def start_effort(self, band: int, day: float) -> tuple[float, float]:
        return 1.0, 1.0

    def parking_probability(self, band: int, day: float, belief: float) -> float:
        return 0.0

    def parking_effects(self):
        return SimpleNamespace(outcome_multiplier=1.0, drop_out_multiplier=1.0, contact_multiplier=1.0,
                               effort_cut=0.0)

    def discharge_shift(self, band: int, due: float, abstinent_days: float, relapse_years, represent_probability:
                        float, u: float) -> float:
        return 0.0

    def caution_hold(self, band: int, due: float, u: float, u_weeks: float) -> float:
        return 0.0

    def held_decline_per_week(self) -> float:
        return 0.0

    def recode_probability(self, day: float) -> float:
        return 0.0

    def sustained_window(self) -> float | None:
        return None

    def defer_probability(self, day: float, days_to_window_end: float) -> float:
        return 0.0

    def review_effects(self, bands, starts):
        return None

    def __repr__(self) -> str:
        return "CONTRACT_BLIND"


CONTRACT_BLIND = ContractBlind()

"""Parameters as data: distributions, scalars and shares, each overridable per substance group and need band.

Three kinds of parameter appear in a scenario file:

* ``Dist`` — a distribution a client-level quantity is drawn from (a duration, an age, an offending rate).
  ``dist`` names the family; its parameters are in the unit the scenario key names (``*_days``, ``*_weeks``,
  ``*_years``). Optional ``min``/``max`` clamp draws (a cap such as "inpatient opiate detox, at most 28 days").
* ``Scalar`` (``Probability``, ``Rate``, ``Ratio``) — one number per group and band (a probability, a hazard
  per year, a hazard ratio). A bare number is shorthand for ``{value = number}``.
* ``Shares`` — routing shares over named categories (referral source, modality, rehab outcome...), which must
  sum to 1.

Any of them may carry ``by_group`` and ``by_band`` tables. The most specific entry wins:
``by_group.G.by_band.B`` > ``by_group.G`` > ``by_band.B`` > the base. An override that does not name a ``dist``
inherits the family and parameters of the entry it refines, so ``by_group.opiate = {median = 68}`` changes
only the median.

Draws are made by inverse transform from uniforms supplied by :mod:`sim.core.randomness`, so one client's quantile
("luck") is kept when a parameter changes: a longer median lengthens every client's stay, in order.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator
from scipy import special

from sim.core.vocabulary import BANDS, GROUPS, Band, Group

_FAMILY_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "lognormal": ("median", "sigma"),
    "gamma": ("mean", "shape"),
    "weibull": ("scale", "shape"),
    "triangular": ("low", "mode", "high"),
    "beta": ("alpha", "beta"),
    "categorical": ("values", "weights"),
}
_ALL_FAMILY_PARAMS = sorted({p for ps in _FAMILY_PARAMS.values() for p in ps})
_SHARE_TOLERANCE = 1e-6
MAX_POUNDS = 1e9  # any amount of money: a district's treatment system costs about £4m a year
MAX_PARAMETER = 1e9  # any parameter of a distribution, in the unit its key names
_SCALAR_FAMILIES = frozenset({"fixed", "exponential", "lognormal", "weibull", "triangular"})


def _inherit(parent: dict[str, Any], child: Any, number_key: str, family_key: str | None) -> Any:
    """Fill an override's missing keys from the entry it refines (overrides never inherit overrides)."""
    if isinstance(child, (int, float)) and not isinstance(child, bool):
        return {"dist": "fixed", "value": child} if family_key else {number_key: child}
    if not isinstance(child, dict):
        return child
    if family_key and "dist" in child:
        return child  # a new family is given in full
    merged = {k: v for k, v in parent.items() if k not in ("by_group", "by_band")}
    merged.update(child)
    return merged


def _expand_overrides(data: Any, number_key: str, family_key: str | None) -> Any:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {"dist": "fixed", "value": data} if family_key else {number_key: data}
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for table in ("by_group", "by_band"):
        entries = data.get(table)
        if isinstance(entries, dict):
            data[table] = {k: _inherit(data, v, number_key, family_key) for k, v in entries.items()}
    return data


class _Overridable(BaseModel):
    """Shared machinery: per-group/per-band overrides resolved once into a 4 x 5 table."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    by_group: dict[Group, Self] | None = None
    by_band: dict[Band, Self] | None = None
    _table: list[list[Any]] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:  # fields only: lookup caches do not count
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__

    def resolve(self, group: str, band: str | None = None) -> Self:
        """The entry that applies to a client of this substance group and need band (band None: before
        assessment)."""
        if self.by_group and group in self.by_group:
            refined = self.by_group[group]
            if band is not None and refined.by_band and band in refined.by_band:
                return refined.by_band[band]
            return refined
        if band is not None and self.by_band and band in self.by_band:
            return self.by_band[band]
        return self

    def table(self) -> list[list[Any]]:
        """``table()[g][b]``: the resolved entry for GROUPS[g] and BANDS[b]; cached."""
        private = self.__pydantic_private__  # a slot: much faster than pydantic's attribute lookup
        table = private["_table"]
        if table is None:
            table = private["_table"] = [[self.resolve(g, b) for b in BANDS] for g in GROUPS]
        return table

    def at(self, g: int, b: int) -> Self:
        """The entry for group index ``g`` and band index ``b`` (the simulation's hot path)."""
        table = self.__pydantic_private__["_table"]
        if table is None:
            table = self.table()
        return table[g][b]

    def entries(self):
        """Every entry, base first, with the key path below this parameter."""
        yield (), self
        for table in ("by_group", "by_band"):
            for key, child in (getattr(self, table) or {}).items():
                for path, entry in child.entries():
                    yield (table, key, *path), entry


class Dist(_Overridable):
    """A distribution of a non-negative client-level quantity, in the unit its scenario key names."""

    dist: Literal["fixed", "exponential", "lognormal", "gamma", "weibull", "triangular", "beta", "categorical"]
    value: float | None = None
    mean: float | None = None
    median: float | None = None
    sigma: float | None = None
    shape: float | None = None
    scale: float | None = None
    low: float | None = None
    mode: float | None = None
    high: float | None = None
    alpha: float | None = None
    beta: float | None = None
    values: list[float] | None = None
    weights: list[float] | None = None
    min: float | None = None
    max: float | None = None
    never: float | None = None  # share for whom the event never comes (a time of inf): a cure fraction
    _plain: Dist | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _expand_overrides(data, "value", "dist")

    @model_validator(mode="after")
    def _check(self) -> Self:
        needed = _FAMILY_PARAMS[self.dist]
        missing = [p for p in needed if getattr(self, p) is None]
        if missing:
            raise ValueError(f"a {self.dist} distribution needs {', '.join(needed)}; missing {', '.join(missing)}")
        extra = [p for p in _ALL_FAMILY_PARAMS if p not in needed and getattr(self, p) is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} is not a parameter of a {self.dist} distribution "
                             f"(it takes {', '.join(needed)})")
        v = self
        positive = {"exponential": ("mean",), "lognormal": ("median",), "gamma": ("mean", "shape"),
                    "weibull": ("scale", "shape"), "beta": ("alpha", "beta")}.get(self.dist, ())
        for p in positive:
            if not getattr(v, p) > 0:
                raise ValueError(f"{p} must be > 0, got {getattr(v, p)}")
        if self.dist == "lognormal" and v.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {v.sigma}")
        if self.dist == "fixed" and v.value < 0:
            raise ValueError(f"value must be >= 0, got {v.value}")
        if self.dist == "triangular":
            if not 0 <= v.low <= v.mode <= v.high or v.low == v.high:
                raise ValueError(f"triangular needs 0 <= low <= mode <= high with low < high, "
                                 f"got low={v.low}, mode={v.mode}, high={v.high}")
        if self.dist == "categorical":
            if len(v.values) != len(v.weights) or not v.values:
                raise ValueError("categorical needs as many weights as values (at least one)")
            if any(x < 0 for x in v.values) or any(w < 0 for w in v.weights) or sum(v.weights) <= 0:
                raise ValueError("categorical values and weights must be >= 0, with some weight > 0")
        too_big = {p: x for p in _ALL_FAMILY_PARAMS + ["min", "max"] if p not in ("values", "weights")
                   for x in [getattr(v, p)] if x is not None and abs(x) > MAX_PARAMETER}
        if self.dist == "categorical" and len(v.values) > 10_000:
            raise ValueError(f"a categorical distribution takes at most 10,000 values, got {len(v.values):,}")
        if self.dist == "categorical" and any(abs(x) > MAX_PARAMETER for x in v.values):
            too_big["values"] = max(v.values, key=abs)
        if too_big:
            raise ValueError(f"{', '.join(f'{p} = {x:g}' for p, x in too_big.items())}: above {MAX_PARAMETER:g}, "
                             "the most any parameter may be")
        if self.dist in ("gamma", "weibull") and v.shape < 1e-3:
            raise ValueError(f"shape must be at least 0.001, got {v.shape}")
        if self.dist == "lognormal" and v.sigma > 10:
            raise ValueError(f"sigma must be at most 10, got {v.sigma}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        for bound in ("min", "max"):
            if getattr(self, bound) is not None and getattr(self, bound) < 0:
                raise ValueError(f"{bound} must be >= 0, got {getattr(self, bound)}")
        if self.never is not None and not 0 <= self.never <= 1:
            raise ValueError(f"never (the share for whom the event never comes) must be in [0, 1], got {self.never}")
        return self

    def ppf(self, u: np.ndarray | float) -> np.ndarray | float:
        """The quantile function: the value at cumulative probability ``u`` (vectorised)."""
        if self.never:  # the lowest 1 - never of u map onto the whole distribution, the rest to inf
            u = np.asarray(u, dtype=float) / (1.0 - self.never) if self.never < 1 else np.full(np.shape(u), 2.0)
            x = np.asarray(self._without_never().ppf(np.where(u < 1.0, u, 0.5)), dtype=float)
            x = np.where(u < 1.0, x, np.inf)
            return x if x.ndim else float(x)
        if type(u) is float and self.dist in _SCALAR_FAMILIES:
            return self._ppf_scalar(u)
        u = np.asarray(u, dtype=float)
        d = self.dist
        if d == "fixed":
            x = np.full_like(u, self.value)
        elif d == "exponential":
            x = -self.mean * np.log1p(-u)
        elif d == "lognormal":
            x = self.median * np.exp(self.sigma * special.ndtri(u))
        elif d == "gamma":
            x = special.gammaincinv(self.shape, u) * (self.mean / self.shape)
        elif d == "weibull":
            x = self.scale * (-np.log1p(-u)) ** (1.0 / self.shape)
        elif d == "triangular":
            a, c, b = self.low, self.mode, self.high
            fc = (c - a) / (b - a)
            x = np.where(u < fc, a + np.sqrt(u * (b - a) * (c - a)), b - np.sqrt((1 - u) * (b - a) * (b - c)))
        elif d == "beta":
            x = special.betaincinv(self.alpha, self.beta, u)
        else:  # categorical over numbers
            cum = np.cumsum(self.weights) / sum(self.weights)
            x = np.asarray(self.values)[np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)]
        if self.min is not None or self.max is not None:
            x = np.clip(x, self.min, self.max)
        return x if x.ndim else float(x)

    def cdf(self, x: np.ndarray | float) -> np.ndarray | float:
        """The cumulative probability of a value ``x`` (vectorised); the inverse of :meth:`ppf` (with ``min`` /
        ``max``, the clamped distribution: all the mass below ``min`` sits at it)."""
        x = np.asarray(x, dtype=float)
        d = self.dist
        with np.errstate(divide="ignore", invalid="ignore"):
            if d == "fixed":
                p = (x >= self.value).astype(float)
            elif d == "exponential":
                p = -np.expm1(-np.maximum(x, 0) / self.mean)
            elif d == "lognormal":
                p = special.ndtr(np.log(np.maximum(x, 0) / self.median) / self.sigma) if self.sigma > 0 else \
                    (x >= self.median).astype(float)
            elif d == "gamma":
                p = special.gammainc(self.shape, np.maximum(x, 0) * self.shape / self.mean)
            elif d == "weibull":
                p = -np.expm1(-(np.maximum(x, 0) / self.scale) ** self.shape)
            elif d == "triangular":
                a, c, b = self.low, self.mode, self.high
                y = np.clip(x, a, b)
                left = np.divide((y - a) ** 2, (b - a) * (c - a)) if c > a else np.ones_like(y)
                right = 1 - np.divide((b - y) ** 2, (b - a) * (b - c)) if b > c else np.ones_like(y)
                p = np.where(y < c, left, right)
            elif d == "beta":
                p = special.betainc(self.alpha, self.beta, np.clip(x, 0, 1))
            else:  # categorical over numbers
                values, weights = np.asarray(self.values), np.asarray(self.weights) / sum(self.weights)
                p = (weights[None, :] * (values[None, :] <= x.reshape(-1, 1))).sum(axis=1).reshape(x.shape)
        p = np.where(np.isnan(p), 0.0, p)
        if self.min is not None:
            p = np.where(x < self.min, 0.0, p)
        if self.max is not None:
            p = np.where(x >= self.max, 1.0, p)
        if self.never:
            p = np.where(np.isinf(x), 1.0, p * (1.0 - self.never))
        return p if p.ndim else float(p)

    def _without_never(self) -> Dist:
        if self._plain is None:
            self._plain = self.model_copy(update={"never": None})
        return self._plain

    def _ppf_scalar(self, u: float) -> float:
        """``ppf`` for one probability without numpy's overhead (same values)."""
        d = self.dist
        if d == "fixed":
            x = self.value
        elif d == "exponential":
            x = -self.mean * math.log1p(-u)
        elif d == "lognormal":
            x = self.median * math.exp(self.sigma * float(special.ndtri(u)))
        elif d == "weibull":
            x = self.scale * (-math.log1p(-u)) ** (1.0 / self.shape)
        else:  # triangular
            a, c, b = self.low, self.mode, self.high
            if u < (c - a) / (b - a):
                x = a + math.sqrt(u * (b - a) * (c - a))
            else:
                x = b - math.sqrt((1 - u) * (b - a) * (b - c))
        if self.min is not None and x < self.min:
            x = self.min
        if self.max is not None and x > self.max:
            x = self.max
        return x

    def expected(self) -> float:
        """The mean of the unclamped distribution (for documentation and queueing checks); inf with a share
        for whom the event never comes."""
        if self.never:
            return math.inf
        d = self.dist
        if d == "fixed":
            return self.value
        if d in ("exponential", "gamma"):
            return self.mean
        if d == "lognormal":
            return self.median * math.exp(self.sigma ** 2 / 2)
        if d == "weibull":
            return self.scale * math.gamma(1 + 1 / self.shape)
        if d == "triangular":
            return (self.low + self.mode + self.high) / 3
        if d == "beta":
            return self.alpha / (self.alpha + self.beta)
        return float(np.dot(self.values, self.weights) / sum(self.weights))


class Scalar(_Overridable):
    """One number per substance group and need band. Subclasses set its bounds."""

    lower: ClassVar[float] = -math.inf
    upper: ClassVar[float] = math.inf
    what: ClassVar[str] = "number"
    bounded: ClassVar[bool] = False  # both bounds are in the nature of the number (a probability's [0, 1])

    value: float

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _expand_overrides(data, "value", None)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.bounded and not self.lower <= self.value <= self.upper:
            raise ValueError(f"a {self.what} must be in [{self.lower:g}, {self.upper:g}], got {self.value}")
        if self.value < self.lower:
            raise ValueError(f"a {self.what} must be >= {self.lower:g}, got {self.value}")
        if self.value > self.upper:
            raise ValueError(f"a {self.what} must be at most {self.upper:g}, got {self.value}")
        return self


class Probability(Scalar):
    lower: ClassVar[float] = 0.0
    upper: ClassVar[float] = 1.0
    what: ClassVar[str] = "probability"
    bounded: ClassVar[bool] = True


class Rate(Scalar):
    """A hazard or rate, per year unless the key says otherwise; at most once a day (365 a year), far above any
    hazard in the references, so that no client can cycle through states fast enough to exhaust a run."""
    lower: ClassVar[float] = 0.0
    upper: ClassVar[float] = 365.0
    what: ClassVar[str] = "rate"


class Money(Scalar):
    """An amount of money (pounds), at most a billion."""
    lower: ClassVar[float] = 0.0
    upper: ClassVar[float] = MAX_POUNDS
    what: ClassVar[str] = "sum of money (pounds)"


class Growth(Scalar):
    """A compound growth rate per year (-0.05 = falling 5% a year), at most doubling each year."""
    lower: ClassVar[float] = -0.99
    upper: ClassVar[float] = 1.0
    what: ClassVar[str] = "growth rate"


class Ratio(Scalar):
    """A hazard ratio or multiplier (1 = no effect), at most 1,000."""
    lower: ClassVar[float] = 0.0
    upper: ClassVar[float] = 1000.0
    what: ClassVar[str] = "ratio"


class Shares(_Overridable):
    """Shares over named categories that sum to 1 (routing, referral source, modality...)."""

    categories: ClassVar[tuple[str, ...]] = ()

    p: dict[str, float]
    _cum: list[float] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "p" not in data and not {"by_group", "by_band"} & data.keys():
            data = {"p": data}  # a bare table of shares
        if isinstance(data, dict):
            data = dict(data)
            for table in ("by_group", "by_band"):
                entries = data.get(table)
                if isinstance(entries, dict):
                    data[table] = {k: ({"p": v} if isinstance(v, dict) and "p" not in v
                                       and not {"by_group", "by_band"} & v.keys() else v)
                                   for k, v in entries.items()}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        unknown = [k for k in self.p if k not in self.categories]
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
                             f"expected some of {', '.join(self.categories)}")
        negative = {k: v for k, v in self.p.items() if not 0 <= v <= 1}
        if negative:
            raise ValueError(f"each share must be in [0, 1], got {negative}")
        total = sum(self.p.values())
        if abs(total - 1.0) > _SHARE_TOLERANCE:
            raise ValueError(f"shares must sum to 1, got {total:.6g} ({self.p})")
        return self

    def probabilities(self) -> np.ndarray:
        """Shares in ``categories`` order (absent categories are 0)."""
        return np.array([self.p.get(c, 0.0) for c in self.categories])

    def pick(self, u: float) -> int:
        """Index into ``categories`` of the category at cumulative probability ``u``."""
        private = self.__pydantic_private__
        cum = private["_cum"]
        if cum is None:
            shares = self.probabilities().tolist()
            cum = list(itertools.accumulate(shares))
            last = max(i for i, x in enumerate(shares) if x > 0)
            cum[last:] = [math.inf] * (len(cum) - last)  # rounding can never pick a zero-share category
            private["_cum"] = cum
        return bisect.bisect_right(cum, u)


def shares_of(*categories: str, name: str) -> type[Shares]:
    """A Shares type over the given categories."""
    return type(name, (Shares,), {"categories": tuple(categories), "__module__": __name__})

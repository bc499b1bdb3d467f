"""Randomness: one root seed, one stream per decision point, client-level draws keyed by the client.

Every client-level number is a pure function of (root seed, decision point, client id, episode, index): a
SplitMix64 hash, counter-based like Philox but cheap to call for a handful of numbers. Nothing depends on the
order in which clients or events are processed, so a change to one stage, a capacity or a contract leaves every
other draw of every client unchanged (common random numbers across scenarios), and the same seed gives the same
history on any machine or executor.

Arrival streams (one per substance group and referral source) are sequences, not client-keyed: they use numpy
Generators seeded from the root ``SeedSequence`` with a fixed spawn key per stream, so adding a stream or
changing one stream's rate leaves the others intact.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


class Stream(IntEnum):
    """Decision points. The value is part of every hash: never renumber an existing member."""

    ATTRIBUTES = 1     # a client's attributes at first referral
    REFERRAL = 2       # re-presentation route and source
    ASSESSMENT = 3     # booking delay, assessor time, domain scores, attendance
    TREATMENT = 4      # start delay, modality, competing exit times, mutual aid
    DETOX = 5          # community and inpatient detox: whether, when, how long, outcome
    REHAB = 6          # residential rehab
    WAITING_LIST = 7   # patience on waiting lists
    REVIEW = 8         # TOP reviews and harm-reduction interventions
    AFTER_EXIT = 9     # relapse and re-presentation
    MORTALITY = 10     # time to death in each state
    CUSTODY = 11       # sentence length and release route
    ARRIVALS = 12      # spawn-key prefix of the arrival sequences (not client-keyed)
    OFFENDING = 13     # recorded offences by spell (sim.analysis.offending)
    BELIEF = 14        # the provider's belief about a client's prospects (provider behaviour, sim.provider.model)
    INTAKE = 15        # acceptance for a start and the fate of a deflected referral (M1)
    PARKING = 16       # parking for the episode (M2)
    REVIEW_GAMING = 17 # misrecorded TOP items (M3)
    DISCHARGE = 18     # holding or fast-tracking a ready client (M4)
    BAND_DRIFT = 19    # band recorded more severe than assessed (M6)
    EXIT_RECODING = 20 # an unplanned exit recorded as a transfer out (M4)
    RE_ENTRY = 21      # a returning completer's re-entry deferred past the window (M4)


def _mix_int(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _M64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _M64
    return z ^ (z >> 31)


def _mix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# 52 random bits plus half a step: every value is exactly representable and strictly inside (0, 1)
_TO_UNIT = 1.0 / (1 << 52)
_HALF_STEP = 0.5 / (1 << 52)
_INDEX_CACHE = (np.arange(1, 257, dtype=np.uint64) * np.uint64(_GAMMA))


# Where each decision point's uniforms sit in a row of ``episode_draws``: (start, count). Counts cover what the
# stages use at most in an episode; a stage asking for more falls back to ``draws`` (the same values).
EPISODE_LAYOUT: dict[Stream, tuple[int, int]] = {}
_at = 0
for _stream, _count in ((Stream.ATTRIBUTES, 8), (Stream.ASSESSMENT, 5), (Stream.TREATMENT, 12), (Stream.DETOX, 10),
                        (Stream.REHAB, 6), (Stream.CUSTODY, 2), (Stream.AFTER_EXIT, 10), (Stream.MORTALITY, 8)):
    EPISODE_LAYOUT[_stream] = (_at, _count)
    _at += _count
EPISODE_WIDTH = _at

# The provider's decision points (drawn only when a provider responds), laid out the same way after them
PROVIDER_LAYOUT: dict[Stream, tuple[int, int]] = {}
for _stream, _count in ((Stream.BELIEF, 1), (Stream.INTAKE, 3), (Stream.PARKING, 1), (Stream.DISCHARGE, 4),
                        (Stream.BAND_DRIFT, 1), (Stream.EXIT_RECODING, 1), (Stream.RE_ENTRY, 1)):
    PROVIDER_LAYOUT[_stream] = (_at, _count)
    _at += _count
PROVIDER_WIDTH = _at - EPISODE_WIDTH


def _layout_keys(layout: dict[Stream, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    streams = np.concatenate([np.full(n, int(s)) for s, (_, n) in layout.items()])
    counters = np.concatenate([np.arange(1, n + 1, dtype=np.uint64) for _, n in layout.values()])
    return streams, counters


_ROW_STREAMS, _ROW_COUNTERS = _layout_keys(EPISODE_LAYOUT)
_PROVIDER_STREAMS, _PROVIDER_COUNTERS = _layout_keys(PROVIDER_LAYOUT)


class ClientRandom:
    """Counter-based uniforms keyed by (decision point, client id, episode, index).

    >>> r = ClientRandom(np.random.SeedSequence(1))
    >>> r.draws(Stream.TREATMENT, 42, 0, 3) == list(r.draws_array(Stream.TREATMENT, 42, 0, 3))
    True
    """

    def __init__(self, seed: np.random.SeedSequence):
        self.seed = seed
        self._root = root = int(seed.generate_state(2, np.uint64)[0])
        self._stream_keys = {s: _mix_int(root ^ (_mix_int(int(s) * _GAMMA & _M64))) for s in Stream}
        self._row_keys = np.array([self._stream_keys[Stream(s)] for s in _ROW_STREAMS], dtype=np.uint64)
        self._provider_keys = np.array([self._stream_keys[Stream(s)] for s in _PROVIDER_STREAMS], dtype=np.uint64)

    def draws(self, stream: Stream, client: int, episode: int, n: int, offset: int = 0) -> list[float]:
        """``n`` uniforms in (0, 1) for this client and episode, indices ``offset .. offset+n-1``.

        Pure Python: for the handful of numbers a stage needs this is several times faster than numpy, and it
        gives exactly the same values as :meth:`draws_array`.
        """
        z = self._stream_keys[stream] ^ client
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _M64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _M64
        z = z ^ (z >> 31) ^ (episode * _GAMMA & _M64)
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _M64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _M64
        h = z ^ (z >> 31)
        out = []
        for i in range(offset + 1, offset + n + 1):
            z = (h + i * _GAMMA) & _M64
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _M64
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _M64
            out.append(((z ^ (z >> 31)) >> 12) * _TO_UNIT + _HALF_STEP)
        return out

    def keyed(self, stream: Stream | int, client, episode, counter) -> np.ndarray:
        """Uniforms for arrays of (client, episode, counter) keys at once, vectorised. With counters 1, 2, ...
        they are exactly :meth:`draws` for that client and episode; any 64-bit counter may be used."""
        key = self._stream_keys.get(stream)
        if key is None:
            key = _mix_int(self._root ^ (_mix_int(int(stream) * _GAMMA & _M64)))
        return _keyed(key, client, episode, counter)

    def draws_array(self, stream: Stream, client: int, episode: int, n: int, offset: int = 0) -> np.ndarray:
        """As :meth:`draws`, vectorised with numpy, for many numbers at once (e.g. a whole episode's reviews)."""
        h = _mix_int(_mix_int(self._stream_keys[stream] ^ client) ^ (episode * _GAMMA & _M64))
        if offset + n <= len(_INDEX_CACHE):
            idx = _INDEX_CACHE[offset:offset + n]
        else:
            idx = np.arange(offset + 1, offset + n + 1, dtype=np.uint64) * np.uint64(_GAMMA)
        bits = _mix_array(np.uint64(h) + idx)
        return (bits >> np.uint64(12)).astype(np.float64) * _TO_UNIT + _HALF_STEP


def _keyed(stream_key, client, episode, counter) -> np.ndarray:
    client = np.asarray(client, dtype=np.int64).astype(np.uint64)
    episode = np.asarray(episode, dtype=np.int64).astype(np.uint64)
    counter = np.asarray(counter, dtype=np.uint64)
    h = _mix_array(_mix_array(np.asarray(stream_key, dtype=np.uint64) ^ client) ^ (episode * np.uint64(_GAMMA)))
    bits = _mix_array(h + counter * np.uint64(_GAMMA))
    return (bits >> np.uint64(12)).astype(np.float64) * _TO_UNIT + _HALF_STEP


def episode_draws(rng: ClientRandom, clients, episodes, provider: bool = False) -> np.ndarray:
    """The uniforms of many (client, episode) pairs at once, one row per pair laid out by ``EPISODE_LAYOUT``
    (then ``PROVIDER_LAYOUT`` if ``provider``): exactly what :meth:`ClientRandom.draws` gives, at a small
    fraction of the cost of drawing them one stage at a time. ``episodes`` may be one number for all."""
    clients = np.asarray(clients, dtype=np.int64)
    episodes = np.broadcast_to(np.asarray(episodes, dtype=np.int64), clients.shape)
    keys, counters = rng._row_keys, _ROW_COUNTERS
    if provider:
        keys, counters = np.r_[keys, rng._provider_keys], np.r_[counters, _PROVIDER_COUNTERS]
    return _keyed(keys[None, :], clients[:, None], episodes[:, None], counters[None, :])


def root_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))


def sequence_generator(seed: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """A Generator for one named sequence (e.g. arrivals of one group from one source), fixed by its key."""
    child = np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + tuple(int(k) for k in key))
    return np.random.Generator(np.random.PCG64(child))

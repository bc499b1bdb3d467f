"""The one replication-seed rule of every pbrsim experiment.

Replication ``r`` (counting from 0) of an experiment with root seed ``seed`` is simulated from
``SeedSequence(seed, spawn_key=(r,))`` — the ``r``-th child that ``SeedSequence(seed).spawn(...)`` gives. It is the
rule ``pbrsim compare``, ``pbrsim replicate``, sweeps (``RunSpec.seed_sequence``), the contract audit, calibration,
validation and the web app all use, so replication ``r`` of any of them, for the same root seed, sees the same
random numbers (common random numbers across commands as well as across contracts).
"""

from __future__ import annotations

import numpy as np


def replication_seed(seed: int, replication: int) -> np.random.SeedSequence:
    """Replication ``replication``'s seed under root ``seed``: ``SeedSequence(seed, spawn_key=(replication,))``
    (a fresh object each call, so it can be handed to a simulation and used again)."""
    seed, replication = int(seed), int(replication)
    if replication < 0:
        raise ValueError(f"replication must be 0 or more, got {replication}")
    return np.random.SeedSequence(seed, spawn_key=(replication,))


def replication_seeds(seed: int, replications: int, first: int = 0) -> list[np.random.SeedSequence]:
    """Replications ``first`` .. ``first + replications - 1``'s seeds, in order (see :func:`replication_seed`)."""
    return [replication_seed(seed, r) for r in range(first, first + int(replications))]

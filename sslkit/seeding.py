"""One rule for deriving independent random streams from a run's seed.

A run has one ``--seed``; the data loader's shuffling (one stream per epoch), each masker's
generator (one per process) and each process's global RNG need streams of their own that are
still fixed by that seed. :func:`derive_seed` is the single formula for all of them, so two
streams never collide by accident and a change to the rule is one edit.

Why this arithmetic and not :class:`numpy.random.SeedSequence` (which :mod:`sslkit.data.splits`
uses for its numpy generators): torch generators take one integer, every pretraining figure in
the README and in users' run directories was produced with these streams, and switching would
change every data order and mask, so no run could be reproduced or resumed bit for bit across
the upgrade. The splits keep SeedSequence for the same reason in reverse (switching them would
move images between train and test). Two rules, each frozen by the results it already made.
"""

from __future__ import annotations

#: A prime far larger than any stream index, so ``seed * SEED_STRIDE + ...`` keeps runs with
#: neighbouring seeds apart.
SEED_STRIDE = 1_000_003
#: Another prime, spacing the streams of one seed (epochs, ranks).
STREAM_STRIDE = 7_919


def derive_seed(seed: int, stream: int = 0) -> int:
    """The seed of stream ``stream`` (an epoch, a rank) of a run seeded ``seed``, in [0, 2**63)."""
    return (int(seed) * SEED_STRIDE + int(stream) * STREAM_STRIDE + 17) % (2**63)

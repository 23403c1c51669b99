"""Inject known label errors with cleanlab's noise generation (demo data, selftest, benchmarks)."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .errors import UsageError

SEED_MAX = 2**32 - 1  # numpy's legacy seeding (cleanlab's noise generation) takes 0..2**32-1


def check_seed(seed) -> int:
    """Return `seed` if numpy can seed with it (a whole number from 0 to SEED_MAX), else refuse.

    >>> check_seed(42)
    42
    """
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed <= SEED_MAX:
        raise UsageError(f"--seed must be a whole number from 0 to {SEED_MAX}, not {seed!r}")
    return seed


def inject_noise(labels, noise_rate: float, *, n_classes: int | None = None,
                 frac_zero_noise_rates: float = 0.0, random_state: int = 0,
                 exact: bool = False) -> np.ndarray:
    """Return a copy of `labels` where about `noise_rate` of them are flipped; with `exact`,
    exactly round(noise_rate * n) of them.

    The flips follow a random class-conditional noise matrix from cleanlab
    (``frac_zero_noise_rates=0`` spreads errors over all classes; higher values concentrate them
    on a few class pairs). cleanlab's draw realises the rate only on average (0.1 gives 7-9%);
    `exact` then trims the draw, or tops it up with flips drawn from the same matrix. Without
    it the draw stays cleanlab's, which the shipped demo datasets and benchmarks were made with.

    >>> y = np.repeat(np.arange(3), 100)
    >>> noisy = inject_noise(y, 0.2, random_state=0)
    >>> bool(0.1 < (noisy != y).mean() < 0.3)
    True
    >>> int((inject_noise(y, 0.2, random_state=0, exact=True) != y).sum())
    60
    """
    from cleanlab.benchmarking.noise_generation import (
        generate_noise_matrix_from_trace,
        generate_noisy_labels,
    )

    labels = np.asarray(labels, dtype=np.int64)
    if noise_rate <= 0:
        return labels.copy()
    k = int(n_classes or labels.max() + 1)
    py = np.bincount(labels, minlength=k) / len(labels)
    matrix = generate_noise_matrix_from_trace(
        k, k * (1 - noise_rate), py=py, valid_noise_matrix=True,
        frac_zero_noise_rates=frac_zero_noise_rates, seed=random_state,
    )
    if matrix is None:
        raise ValueError(f"cleanlab found no valid noise matrix for rate {noise_rate} and {k} "
                         "classes")
    state = np.random.get_state()
    try:  # generate_noisy_labels draws from numpy's global generator
        np.random.seed(random_state)
        noisy = np.asarray(generate_noisy_labels(labels, matrix), dtype=np.int64)
    finally:
        np.random.set_state(state)
    if not exact:
        return noisy
    return _exact_count(labels, noisy, matrix, round(noise_rate * len(labels)),
                        np.random.default_rng(random_state))


def _exact_count(labels, noisy, matrix, wanted: int, rng) -> np.ndarray:
    """`noisy` with exactly `wanted` flips: extra flips undone at random, missing ones added on
    samples and to classes drawn from the noise matrix (P(given=i | true=j) = matrix[i, j])."""
    noisy = noisy.copy()
    flipped = np.flatnonzero(noisy != labels)
    if len(flipped) > wanted:
        undo = rng.choice(flipped, len(flipped) - wanted, replace=False)
        noisy[undo] = labels[undo]
        return noisy
    clean = np.flatnonzero(noisy == labels)
    missing = min(wanted - len(flipped), len(clean))
    if missing <= 0:
        return noisy
    # A sample of class j flips with the matrix's probability 1 - matrix[j, j]: classes the
    # matrix keeps clean (frac_zero_noise_rates) stay clean while others can take the flips.
    weight = 1 - np.diag(matrix)[labels[clean]]
    if np.count_nonzero(weight > 0) < missing:
        weight = weight + 1e-12  # too few noisy classes: any sample may take a flip
    chosen = rng.choice(clean, missing, replace=False, p=weight / weight.sum())
    for index in chosen:
        true = labels[index]
        column = matrix[:, true].astype(float).copy()
        column[true] = 0
        if column.sum() <= 0:
            column = np.ones_like(column)
            column[true] = 0
        noisy[index] = rng.choice(len(column), p=column / column.sum())
    return noisy

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
                 frac_zero_noise_rates: float = 0.0, random_state: int = 0) -> np.ndarray:
    """Return a copy of `labels` where about `noise_rate` of them are flipped.

    The flips follow a random class-conditional noise matrix from cleanlab
    (``frac_zero_noise_rates=0`` spreads errors over all classes; higher values concentrate them
    on a few class pairs).

    >>> y = np.repeat(np.arange(3), 100)
    >>> noisy = inject_noise(y, 0.2, random_state=0)
    >>> bool(0.1 < (noisy != y).mean() < 0.3)
    True
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
        return np.asarray(generate_noisy_labels(labels, matrix), dtype=np.int64)
    finally:
        np.random.set_state(state)

"""Connectivity rules and weight distributions for projections (explicit NumPy generators)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedInDegree:
    """Every target neuron receives exactly ``k`` distinct sources (no autapses within a population)."""

    k: int

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pool = n_pre - same
        if self.k > pool:
            raise ValueError(f"Invalid value for 'k': expected at most {pool} distinct partners, got {self.k}.")
        # draw with replacement, vectorised; redraw only the (rare) rows with a repeated partner
        picks = rng.integers(0, pool, size=(n_post, self.k))
        ordered = np.sort(picks, axis=1)
        for row in np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0]:
            picks[row] = rng.choice(pool, size=self.k, replace=False)
        if same:  # skip the target's own index
            picks = picks + (picks >= np.arange(n_post)[:, None])
        return picks.ravel(), np.repeat(np.arange(n_post), self.k)


@dataclass(frozen=True)
class Probability:
    """Each (source, target) pair connected independently with probability ``p`` (no autapses)."""

    p: float

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= self.p <= 1:
            raise ValueError(f"Invalid value for 'p': expected a probability in [0, 1], got {self.p}.")
        pres, posts = [], []
        block = max(1, 2_000_000 // max(n_post, 1))
        for start in range(0, n_pre, block):
            mask = rng.random((min(block, n_pre - start), n_post)) < self.p
            if same:
                rows = np.arange(start, start + mask.shape[0])
                mask[np.arange(mask.shape[0]), rows] = False
            i, j = np.nonzero(mask)
            pres.append(i + start)
            posts.append(j)
        return np.concatenate(pres), np.concatenate(posts)


@dataclass(frozen=True)
class FixedTotalNumber:
    """``n`` synapses with source and target drawn independently and uniformly (NEST's
    ``fixed_total_number``: multapses and autapses allowed), as in Potjans & Diesmann (2014); the
    in-degrees are then binomial with mean n / n_post."""

    n: int

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 0:
            raise ValueError(f"Invalid value for 'n': expected an integer >= 0 (synapses), got {self.n!r}.")
        index = np.int32 if max(n_pre, n_post) < 2**31 else np.int64
        pre = rng.integers(0, n_pre, self.n, dtype=index)
        # sorted by source (radix sort for <= 2^16 sources): the pairs are i.i.d., so pairing the sorted
        # sources with the independent targets leaves their distribution unchanged, and the network's
        # compilation (synapses grouped by source) then reads them in order
        pre = np.sort(pre.astype(np.uint16), kind="stable").astype(index) if n_pre <= 2**16 else np.sort(pre)
        return pre, rng.integers(0, n_post, self.n, dtype=index)


@dataclass(frozen=True)
class OneToOne:
    """Source i → target i (equal sizes)."""

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if n_pre != n_post:
            raise ValueError(f"OneToOne needs equal population sizes, got {n_pre} → {n_post}.")
        return np.arange(n_pre), np.arange(n_post)


@dataclass(frozen=True)
class Topographic:
    """Each target draws ``k`` sources near its own position on a line (both populations mapped to
    [0, 1)), with a Gaussian profile of width ``sigma`` (fraction of the map); no autapses."""

    k: int
    sigma: float = 0.1

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x_pre = (np.arange(n_pre) + 0.5) / n_pre
        pres = []
        for j in range(n_post):
            d = x_pre - (j + 0.5) / n_post
            p = np.exp(-0.5 * (d / self.sigma) ** 2)
            if same:
                p[j] = 0.0
            p /= p.sum()
            pres.append(rng.choice(n_pre, size=min(self.k, int((p > 0).sum())), replace=False, p=p))
        return np.concatenate(pres), np.repeat(np.arange(n_post), [len(p) for p in pres])


@dataclass(frozen=True)
class Explicit:
    """Given (pre, post) index arrays."""

    pre: tuple
    post: tuple

    def build(self, n_pre: int, n_post: int, same: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pre, post = np.asarray(self.pre, dtype=np.int64), np.asarray(self.post, dtype=np.int64)
        if pre.shape != post.shape or pre.ndim != 1:
            raise ValueError("Explicit connectivity needs two 1-D index arrays of equal length.")
        if len(pre) and (pre.min() < 0 or pre.max() >= n_pre or post.min() < 0 or post.max() >= n_post):
            raise ValueError(f"Explicit connectivity indices out of range for {n_pre} → {n_post} neurons.")
        return pre, post


@dataclass(frozen=True)
class Normal:
    """Weights ~ N(mean, sd) clipped at ``minimum`` (nS)."""

    mean: float
    sd: float
    minimum: float = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.maximum(rng.normal(self.mean, self.sd, n), self.minimum)


@dataclass(frozen=True)
class LogNormal:
    """Weights log-normal with the given mean and sd (nS)."""

    mean: float
    sd: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = np.log1p((self.sd / self.mean) ** 2)
        return rng.lognormal(np.log(self.mean) - sigma2 / 2, np.sqrt(sigma2), n)


@dataclass(frozen=True)
class TruncatedNormal:
    """N(mean, sd) truncated to [low, high): values outside are redrawn (NEST's ``redraw``), for
    weights or per-synapse delays (Potjans & Diesmann 2014: delays 1.5 ± 0.75 ms, at least dt)."""

    mean: float
    sd: float
    low: float = 0.0
    high: float = np.inf

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean) and np.isfinite(self.sd) and self.sd >= 0 and self.low < self.high):
            raise ValueError(
                f"Invalid value for TruncatedNormal: expected finite mean, sd >= 0 and low < high, got {self!r}."
            )
        if self.sd == 0 and not self.low <= self.mean < self.high:
            raise ValueError(f"Invalid value for TruncatedNormal: mean {self.mean} outside [{self.low}, {self.high}).")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = rng.normal(self.mean, self.sd, n)
        for _ in range(1000):  # vectorised redraws of the values outside (a few rounds at most in practice)
            bad = np.flatnonzero((values < self.low) | (values >= self.high))
            if not len(bad):
                return values
            values[bad] = rng.normal(self.mean, self.sd, len(bad))
        raise ValueError(f"TruncatedNormal {self!r}: the interval holds too little of the distribution to sample.")


def sample_weights(weight, rng: np.random.Generator, n: int) -> np.ndarray:
    """A constant (nS), a distribution with ``sample(rng, n)``, or an array of n weights."""
    if hasattr(weight, "sample"):
        values = weight.sample(rng, n)
    else:
        values = np.broadcast_to(np.asarray(weight, dtype=float), (n,)).copy()
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("Invalid value for 'weight_nS': expected finite conductances >= 0 (nS).")
    return values

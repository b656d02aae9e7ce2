"""Greedy subset selection that lowers the Fréchet distance of the kept samples to the reals.

Each step drops one sample. Recomputing the FD for every candidate removal would cost one
D×D eigen-decomposition per candidate, so candidates are *ranked* by the first-order change
of the FD (from the kept set's mean and covariance, updated incrementally in O(D²) per
removal) and checked exactly in that order. A removal is kept only if the exact FD
goes down, so the FD history is monotonically non-increasing by construction.

FD(μ, Σ) = |μ − μr|² + tr Σ + tr Σr − 2 tr (A Σ A)^{1/2}, with A = Σr^{1/2} (fixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EIG_FLOOR = 1e-10


def _sym_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


@dataclass
class _RealStats:
    mu: np.ndarray
    trace: float
    sqrt: np.ndarray  # A = Σr^{1/2}


@dataclass
class SelectionResult:
    keep: np.ndarray  # bool mask over the input rows
    history: list[float] = field(default_factory=list)  # exact FD after each accepted step (first = start)
    removed_order: list[int] = field(default_factory=list)


def _real_stats(real: np.ndarray) -> _RealStats:
    cov = np.cov(real, rowvar=False).reshape(real.shape[1], real.shape[1])
    return _RealStats(real.mean(0), float(np.trace(cov)), _sym_sqrt(cov))


def _fd_and_grad(mu: np.ndarray, cov: np.ndarray, r: _RealStats) -> tuple[float, np.ndarray]:
    """Exact FD and its gradient with respect to Σ: I − A M^{-1/2} A, where M = A Σ A."""
    m = r.sqrt @ cov @ r.sqrt
    w, v = np.linalg.eigh((m + m.T) / 2)
    w = np.clip(w, 0, None)
    diff = mu - r.mu
    fd = float(diff @ diff + np.trace(cov) + r.trace - 2 * np.sqrt(w).sum())
    inv_sqrt = (v / np.sqrt(np.maximum(w, EIG_FLOOR))) @ v.T
    grad = np.eye(len(mu)) - r.sqrt @ inv_sqrt @ r.sqrt
    return fd, grad


def _predicted_change(x: np.ndarray, mu: np.ndarray, cov: np.ndarray, grad: np.ndarray, r: _RealStats) -> np.ndarray:
    """First-order FD change for removing each row of x from a set of n (mean mu, cov cov)."""
    n = len(x)
    d = x - mu
    dmu = -d / (n - 1)
    mean_term = 2 * dmu @ (mu - r.mu) + (dmu * dmu).sum(1)
    # Σ' − Σ = Σ/(n−2) − n/((n−1)(n−2)) d dᵀ  (unbiased covariance, one row removed)
    cov_term = np.trace(grad @ cov) / (n - 2) - n / ((n - 1) * (n - 2)) * np.einsum("ij,jk,ik->i", d, grad, d)
    return mean_term + cov_term


def _remove_one(x: np.ndarray, mu: np.ndarray, cov: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance after removing row x from a set of n: O(D²), no pass over the set."""
    d = x - mu
    scatter = cov * (n - 1) - n / (n - 1) * np.outer(d, d)
    return (n * mu - x) / (n - 1), scatter / (n - 2)


class _SmallSet:
    """Exact FD for sets smaller than the feature dimension, through n×n Gram matrices.

    With n < D the covariance is singular and the first-order ranking breaks down (the
    square root has an infinite slope at 0), but then the non-zero eigenvalues of A Σ A
    equal those of H (X Σr Xᵀ) H / (n−1) (H: centring), an n×n problem, so every
    candidate can be checked exactly: n eigen-decompositions of n×n per step.
    """

    def __init__(self, fake: np.ndarray, r: _RealStats):
        real_cov = r.sqrt @ r.sqrt
        self.fake, self.r = fake, r
        self.q = fake @ real_cov @ fake.T
        self.g = fake @ fake.T

    def fd(self, idx: np.ndarray) -> float:
        n = len(idx)
        h = np.eye(n) - 1.0 / n
        q = h @ self.q[np.ix_(idx, idx)] @ h / (n - 1)
        tr_cov = float(np.trace(h @ self.g[np.ix_(idx, idx)] @ h)) / (n - 1)
        diff = self.fake[idx].mean(0) - self.r.mu
        w = np.clip(np.linalg.eigvalsh((q + q.T) / 2), 0, None)
        return float(diff @ diff + tr_cov + self.r.trace - 2 * np.sqrt(w).sum())

    def best_removal(self, idx: np.ndarray) -> tuple[int, float]:
        scores = [self.fd(np.delete(idx, k)) for k in range(len(idx))]
        k = int(np.argmin(scores))
        return int(idx[k]), scores[k]


def greedy_fd_selection(
    fake: np.ndarray, real: np.ndarray, max_drop: int, min_keep: int = 3, candidates: int = 5,
    exhaustive_below: int = 128,
) -> SelectionResult:
    """Drop up to `max_drop` rows of `fake`, each time the best-predicted one whose removal
    lowers the exact FD (trying up to `candidates`); stop when none of them lowers it.

    Sets of at most `exhaustive_below` rows and fewer rows than dimensions are searched
    exhaustively and exactly instead (see _SmallSet).
    """
    fake = np.asarray(fake, np.float64)
    r = _real_stats(np.asarray(real, np.float64))
    alive = np.ones(len(fake), bool)
    mu, cov = fake.mean(0), np.cov(fake, rowvar=False).reshape(fake.shape[1], fake.shape[1])
    fd, grad = _fd_and_grad(mu, cov, r)
    result = SelectionResult(alive, [fd])
    small = None
    while len(result.removed_order) < max_drop and alive.sum() > max(min_keep, 3):
        idx = np.flatnonzero(alive)
        if small is not None or len(idx) <= min(exhaustive_below, fake.shape[1]):
            small = small or _SmallSet(fake, r)
            j, fd_j = small.best_removal(idx)
            best = (j, fd_j, None, None, None) if fd_j < fd else None
        else:
            best = _try_candidates(fake, idx, mu, cov, grad, r, fd, candidates)
        if best is None:
            break
        j, fd, mu, cov, grad = best
        alive[j] = False
        result.history.append(fd)
        result.removed_order.append(int(j))
    return result


def _try_candidates(fake, idx, mu, cov, grad, r, fd, candidates):
    """The best-predicted removal that truly lowers the FD, or None."""
    pred = _predicted_change(fake[idx], mu, cov, grad, r)
    for j in idx[np.argsort(pred)[:candidates]]:
        # First candidate that truly lowers the FD wins: the prediction is usually right,
        # so this costs one eigen-decomposition per step instead of `candidates`.
        mu_j, cov_j = _remove_one(fake[j], mu, cov, len(idx))
        fd_j, grad_j = _fd_and_grad(mu_j, cov_j, r)
        if fd_j < fd:
            return j, fd_j, mu_j, cov_j, grad_j
    return None

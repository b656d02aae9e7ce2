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
    # Pseudo-inverse square root: directions the kept set does not span (n < D) get 0, not
    # 1/sqrt(1e-10), which would drown the ranking in numerical noise.
    keep = w > EIG_FLOOR * max(float(w.max()), 1.0)
    inv_sqrt = (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T
    grad = np.eye(len(mu)) - r.sqrt @ inv_sqrt @ r.sqrt
    return fd, grad


def _predicted_change(x: np.ndarray, mu: np.ndarray, cov: np.ndarray, grad: np.ndarray,
                      r: _RealStats) -> np.ndarray:
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

    With n < D the covariance is singular and the D-space gradient is meaningless (the
    square root has an infinite slope at 0), but the non-zero eigenvalues of A Σ A equal
    those of H (X Σr Xᵀ) H / (n−1) (H: centring), an n×n problem. Candidates are ranked by
    the first-order change of the nuclear norm of Y = Xc A when row k goes:
    −Σ_i s_i u_ki² (U, s from the same n×n eigen-decomposition), then checked exactly.
    """

    def __init__(self, fake: np.ndarray, r: _RealStats):
        self.fake, self.r = fake, r
        self.q = fake @ (r.sqrt @ r.sqrt) @ fake.T
        self.g = fake @ fake.T

    def _centred_q(self, idx: np.ndarray) -> np.ndarray:
        n = len(idx)
        h = np.eye(n) - 1.0 / n
        q = h @ self.q[np.ix_(idx, idx)] @ h
        return (q + q.T) / 2

    def fd(self, idx: np.ndarray) -> float:
        n = len(idx)
        h = np.eye(n) - 1.0 / n
        tr_cov = float(np.trace(h @ self.g[np.ix_(idx, idx)] @ h)) / (n - 1)
        diff = self.fake[idx].mean(0) - self.r.mu
        w = np.clip(np.linalg.eigvalsh(self._centred_q(idx)) / (n - 1), 0, None)
        return float(diff @ diff + tr_cov + self.r.trace - 2 * np.sqrt(w).sum())

    def ranked(self, idx: np.ndarray) -> np.ndarray:
        """Rows of idx ordered by predicted FD after removing each (best first)."""
        n, x = len(idx), self.fake[idx]
        mu = x.mean(0)
        w, u = np.linalg.eigh(self._centred_q(idx))
        s = np.sqrt(np.clip(w, 0, None))
        nuclear = s.sum() - (u * u) @ s  # ||Y without row k||_*, first order
        d = x - mu
        mu_k = (n * mu - x) / (n - 1)
        mean_term = ((mu_k - self.r.mu) ** 2).sum(1)
        scatter_tr = float(np.trace(np.eye(n) @ (d @ d.T))) - n / (n - 1) * (d * d).sum(1)
        pred = mean_term + scatter_tr / (n - 2) + self.r.trace - 2 * nuclear / np.sqrt(n - 2)
        return idx[np.argsort(pred)]


def greedy_fd_selection(
    fake: np.ndarray, real: np.ndarray, max_drop: int, min_keep: int = 3, candidates: int = 5
) -> SelectionResult:
    """Drop up to `max_drop` rows of `fake`, each time the best-predicted one whose removal
    lowers the exact FD (trying up to `candidates`); stop when none of them lowers it.

    Sets with fewer rows than dimensions are ranked and checked in n×n space (_SmallSet).
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
        if small is not None or len(idx) <= fake.shape[1]:
            small = small or _SmallSet(fake, r)
            best = None
            for j in small.ranked(idx)[:candidates]:
                fd_j = small.fd(idx[idx != j])
                if fd_j < fd:
                    best = (j, fd_j, None, None, None)
                    break
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

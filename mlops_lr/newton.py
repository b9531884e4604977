"""Logistic regression by Newton's method from merged per-batch sums: scikit-learn's
``LogisticRegression(solver="newton-cholesky")`` when the rows do not fit in memory.

scikit-learn minimises, over the coefficients ``W`` (one row per score, the intercept last)::

    Σ sᵢ · loss(yᵢ, [zᵢ, 1] Wᵀ) / Σ sᵢ  +  ‖W without its intercepts‖² / (2 · C · Σ sᵢ)

with ``s`` the sample (class) weights and ``loss`` the binomial (one score) or multinomial
(one score per class) log loss. Everything a Newton step needs at a point ``W`` is a sum over
rows — the weighted loss, the gradient ``[Z, 1]ᵀ (p − y)`` and the Hessian ``[Z, 1]ᵀ diag(h)
[Z, 1]`` (``h = p(1 − p)``; for a softmax the full block structure ``h_kl = p_k(δ_kl − p_l)``)
— so :class:`NewtonStats` of batches merge by addition, in any grouping, and
:func:`newton_cholesky` needs one pass over the data per point it evaluates.

:func:`newton_cholesky` follows scikit-learn's solver step for step (start at zero, the same
backtracking line search, the same variables held fixed for a softmax, the same stopping
rule: max |gradient| ≤ tol and half the Newton decrement ≤ tol), so it stops at the same
iterate, to rounding. Where scikit-learn would fall back to L-BFGS (a singular or
ill-conditioned Hessian, a failed line search) it raises :class:`NewtonFailure`: that
fallback needs many more passes.

Numeric core: numpy and scipy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# scikit-learn's backtracking line search: halve the step up to 20 times; accept on Armijo's
# condition with this slope fraction (1/2**11).
_ARMIJO = 0.00048828125
_HALVINGS = 21
# Rows of the design weighted at a time for the Hessian (128 kB of 8 features: in cache).
_SANDWICH_ROWS = 2048


class NewtonFailure(ArithmeticError):
    """Newton's method cannot go on (scikit-learn falls back to L-BFGS there)."""


class NotConverged(NewtonFailure):
    """The stopping rule did not hold within ``max_iter`` Newton steps."""

    def __init__(self, max_iter: int) -> None:
        super().__init__(f"Newton's method did not converge within {max_iter} iterations")
        self.max_iter = max_iter


@dataclass(frozen=True)
class NewtonStats:
    """Sums over rows at one point ``W``, each term weighted by the row's sample weight.

    Attributes
    ----------
    weight : float
        ``Σ s``.
    loss : float
        ``Σ s · loss``.
    gradient : np.ndarray
        ``Σ s · (p − y) ⊗ [z, 1]``, shape ``(scores, features + 1)``.
    hessian : np.ndarray
        ``Σ s · h ⊗ [z, 1][z, 1]ᵀ``, shape ``(scores · (features + 1),) * 2``; variable
        ``k · (features + 1) + j`` is feature ``j`` (the intercept last) of score ``k``.
    vanishing : float
        ``Σ s`` over the rows whose binomial curvature ``p(1 − p)`` is 0 (scikit-learn gives
        up on Newton when they are over a quarter of the weight).
    """

    weight: float
    loss: float
    gradient: np.ndarray
    hessian: np.ndarray
    vanishing: float

    @classmethod
    def from_batch(
        cls,
        Z: np.ndarray,
        y: np.ndarray,
        coef: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> NewtonStats:
        """The sums of one batch.

        Parameters
        ----------
        Z : np.ndarray
            The rows' inputs to the estimator (after preprocessing), shape ``(n, features)``.
        y : np.ndarray
            Each row's class index (``0 … classes − 1``; 0 or 1 for one score), shape ``(n,)``.
        coef : np.ndarray
            ``W``: shape ``(1, features + 1)`` for a binary model (the score of class 1),
            ``(classes, features + 1)`` for a softmax; the intercept last.
        sample_weight : np.ndarray, optional
            Each row's weight (default 1).
        """
        Z = np.asarray(Z, dtype=np.float64)
        n, scores = len(Z), len(coef)
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        raw = Z @ coef[:, :-1].T + coef[:, -1]  # (n, scores)
        if scores == 1:
            raw = raw[:, 0]
            target = (y == 1).astype(np.float64)
            # From exp(−|raw|), as scikit-learn does: p(1 − p) of p rounded to 1 would be 0
            # for raw > 37, which is not where the curvature vanishes.
            small = np.exp(-np.abs(raw))
            share = 1.0 / (1.0 + small)
            p = np.where(raw >= 0, share, small * share)
            # Σ log(1 + exp(raw)) − Σ y·raw, the second a dot product.
            softplus = np.log1p(small) + np.maximum(raw, 0.0)
            loss = _total(softplus, weights) - _total(
                raw, target if weights is None else target * weights
            )
            errors = (p - target)[:, None]
            curvature = small * share * share
            zero = small == 0  # the curvature underflows there and only there
            vanishing = float(zero.sum() if weights is None else weights[zero].sum())
            blocks = {(0, 0): curvature}
        else:
            top = raw.max(axis=1, keepdims=True)
            shifted = np.exp(raw - top)
            total = shifted.sum(axis=1)
            p = shifted / total[:, None]
            losses = np.log(total) + top[:, 0] - raw[np.arange(n), y]
            loss = _total(losses, weights)
            errors = p.copy()
            errors[np.arange(n), y] -= 1.0
            vanishing = 0.0
            blocks = {
                (k, m): p[:, k] * ((k == m) - p[:, m])
                for k in range(scores)
                for m in range(k, scores)
            }
        if weights is not None:
            errors = errors * weights[:, None]
        q = Z.shape[1] + 1
        gradient = np.empty((scores, q))
        gradient[:, :-1], gradient[:, -1] = errors.T @ Z, errors.sum(axis=0)
        hessian = np.empty((scores * q, scores * q))
        for (k, m), h in blocks.items():
            block = _sandwich(Z, h if weights is None else h * weights)
            hessian[k * q : (k + 1) * q, m * q : (m + 1) * q] = block
            hessian[m * q : (m + 1) * q, k * q : (k + 1) * q] = block.T
        return cls(
            float(n if weights is None else weights.sum()),
            loss,
            gradient,
            hessian,
            vanishing,
        )

    def merge(self, other: NewtonStats) -> NewtonStats:
        """Both row sets' sums."""
        return NewtonStats(
            self.weight + other.weight,
            self.loss + other.loss,
            self.gradient + other.gradient,
            self.hessian + other.hessian,
            self.vanishing + other.vanishing,
        )


def _total(values: np.ndarray, weights: np.ndarray | None) -> float:
    """``Σ weights · values`` (``Σ values`` without weights)."""
    return float(values.sum() if weights is None else weights @ values)


def _sandwich(Z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``[Z, 1]ᵀ diag(h) [Z, 1]``, without the copy of ``Z`` a column of ones takes, over
    slices of rows whose weighted copy stays in cache (three times as fast as one copy of
    the batch)."""
    q = Z.shape[1] + 1
    block = np.zeros((q, q))
    for start in range(0, len(Z), _SANDWICH_ROWS):
        rows = Z[start : start + _SANDWICH_ROWS]
        block[:-1, :-1] += (rows * h[start : start + _SANDWICH_ROWS, None]).T @ rows
    block[:-1, -1] = block[-1, :-1] = h @ Z
    block[-1, -1] = h.sum()
    return block


@dataclass(frozen=True)
class NewtonResult:
    """The fitted coefficients ``coef`` (shape ``(scores, features + 1)``, intercept last),
    the Newton steps taken (scikit-learn's ``n_iter_``) and the points evaluated (passes)."""

    coef: np.ndarray
    n_iter: int
    passes: int


@dataclass(frozen=True)
class _Point:
    """The objective, its gradient (flat) and Hessian at ``coef``."""

    coef: np.ndarray
    loss: float
    gradient: np.ndarray
    hessian: np.ndarray


def newton_cholesky(
    evaluate: Callable[[np.ndarray], NewtonStats],
    n_classes: int,
    n_features: int,
    C: float = 1.0,
    tol: float = 1e-4,
    max_iter: int = 100,
) -> NewtonResult:
    """Minimise scikit-learn's logistic regression objective (with an intercept) by its
    Newton-Cholesky steps, ``evaluate(W)`` giving the merged sums of all rows at ``W``.

    Parameters
    ----------
    evaluate : callable
        ``W → NewtonStats`` of every training row at ``W`` (one pass over the data).
    n_classes : int
        Two (one score, the second class's) or more (softmax).
    n_features : int
        The estimator's inputs (columns of ``Z``).
    C : float
        The inverse penalty strength; ``math.inf`` for none.
    tol, max_iter : float, int
        scikit-learn's stopping rule and its limit on Newton steps.

    Returns
    -------
    NewtonResult

    Raises
    ------
    NotConverged
        The stopping rule did not hold after ``max_iter`` steps.
    NewtonFailure
        The Hessian is singular or ill-conditioned, most rows have no curvature left, the
        step is not a descent direction or the line search fails.
    """
    scores = 1 if n_classes == 2 else n_classes
    q = n_features + 1
    coef = np.zeros((scores, q))
    stats = evaluate(coef)
    passes = 1
    l2 = 0.0 if math.isinf(C) else 1.0 / (C * stats.weight)
    # A softmax is unchanged by a shift common to every class: scikit-learn holds the last
    # class's intercept (with a penalty) or all its coefficients (without) fixed.
    free = np.ones((scores, q), dtype=bool)
    if scores > 1:
        free[-1, -1 if l2 > 0 else slice(None)] = False
    free = free.ravel()
    point = _objective(stats, coef, l2)
    for iteration in range(1, max_iter + 1):
        if stats.vanishing > 0.25 * stats.weight:
            raise NewtonFailure(
                "most training rows are classified with certainty (the classes are "
                "separable): the Hessian vanishes"
            )
        step = _newton_step(point, free)
        gradient = np.where(free, point.gradient, 0.0)
        slope = float(gradient @ step)
        if slope > 0:
            raise NewtonFailure("the Newton step is not a descent direction")
        for halving in range(_HALVINGS):
            t = 0.5**halving
            trial = coef + t * step.reshape(coef.shape)
            stats = evaluate(trial)
            passes += 1
            candidate = _objective(stats, trial, l2)
            if _accepted(point, gradient, candidate, t * _ARMIJO * slope):
                break
        else:
            raise NewtonFailure(f"the line search failed at iteration {iteration}")
        hessian = point.hessian[np.ix_(free, free)]
        decrement = float(step[free] @ hessian @ step[free])
        coef, point = trial, candidate
        if np.abs(point.gradient).max() <= tol and 0.5 * decrement <= tol:
            return NewtonResult(_centred(coef, l2), iteration, passes)
    raise NotConverged(max_iter)


def _objective(stats: NewtonStats, coef: np.ndarray, l2: float) -> _Point:
    """scikit-learn's objective (mean weighted loss plus the penalty), gradient and Hessian
    at ``coef``; intercepts are not penalised."""
    weights = coef[:, :-1]
    penalty = np.zeros_like(coef)
    penalty[:, :-1] = l2
    gradient = stats.gradient / stats.weight + penalty * coef
    hessian = stats.hessian / stats.weight
    hessian[np.diag_indices_from(hessian)] += penalty.ravel()
    loss = stats.loss / stats.weight + 0.5 * l2 * float((weights**2).sum())
    return _Point(coef, loss, gradient.ravel(), hessian)


def _newton_step(point: _Point, free: np.ndarray) -> np.ndarray:
    """``−H⁻¹ g`` over the free variables (0 for the fixed ones), by Cholesky.

    scikit-learn's symmetric solve gives up when the reciprocal condition number is below
    the machine epsilon; so does this."""
    from scipy import linalg  # deferred: importing this module needs only numpy

    hessian = point.hessian[np.ix_(free, free)]
    step = np.zeros_like(point.gradient)
    try:
        if not np.linalg.cond(hessian, 1) < 1.0 / np.finfo(np.float64).eps:
            raise linalg.LinAlgError("ill-conditioned")
        factor = linalg.cho_factor(hessian, lower=False, check_finite=True)
    except (linalg.LinAlgError, ValueError):
        raise NewtonFailure(
            "the Hessian is singular or ill-conditioned (collinear inputs, or separable "
            "classes without a penalty)"
        ) from None
    step[free] = linalg.cho_solve(factor, -point.gradient[free])
    return step


def _accepted(old: _Point, old_gradient: np.ndarray, new: _Point, armijo: float) -> bool:
    """scikit-learn's line-search test: enough decrease (Armijo), or a change within the
    rounding of the loss with a smaller gradient (near the optimum)."""
    improvement = new.loss - old.loss
    if improvement <= armijo:
        return True
    tiny = abs(old.loss * 16 * np.finfo(np.float64).eps)
    return abs(improvement) <= tiny and np.abs(new.gradient).sum() < np.abs(old_gradient).sum()


def _centred(coef: np.ndarray, l2: float) -> np.ndarray:
    """scikit-learn's final form of a softmax: intercepts (with a penalty) or all
    coefficients (without) summing to zero over the classes."""
    coef = coef.copy()
    if len(coef) > 1:
        if l2 > 0:
            coef[:, -1] -= coef[:, -1].mean()
        else:
            coef -= coef.mean(axis=0)
    return coef


__all__ = ["NewtonFailure", "NewtonResult", "NewtonStats", "NotConverged", "newton_cholesky"]

"""Post-training quantization of linear-regression coefficients.

Numeric core only: numpy + scipy, no I/O, no framework dependencies.

A fitted linear model ``y = X @ w + b`` is stored as integer codes ``q`` on a
grid ``w_q[j] = scale * 2**exponent[j] * (q[j] - zero_point)`` plus an
intercept.  Everything is calibrated on ``X_calib`` (the *training* split),
never on test data.

Calibration objective
---------------------
The quantity every data-driven choice (rounding, scale, exponents) minimises is
the mean squared difference between float and quantized predictions on the
calibration data::

    E = mean((X (w_q - w) + (b_q - b))**2)
      = dw' S dw + (xbar . dw + db)**2,        dw = w_q - w, db = b_q - b,

with ``S`` the centred (ddof=0) covariance and ``xbar`` the mean of
``X_calib``.  Bias correction sets ``b_q = b - xbar . dw`` which zeroes the
second term, so the rounding problem is the quadratic form ``dw' H dw`` with
``H = S`` (bias correction) or ``H = S + xbar xbar'`` (no bias correction).
Writing ``dw = D (q - t)`` with ``D = diag(step)`` and ``t`` the real-valued
target codes turns it into a box-constrained integer least-squares problem
``min ||R (q - t)||^2, lo <= q <= hi`` with ``R' R = D H D`` (Cholesky):

* ``"nearest"`` rounds every code independently (ignores ``H``).
* ``"hessian"`` is GPTQ/OBQ-style error feedback.  GPTQ's ``H^-1`` update is
  algebraically Babai's nearest-plane algorithm on the Cholesky factor (a test
  checks the two agree), which is how it is implemented, with box clipping.
  It runs in GPTQ act-order and in a sorted (V-BLAST) order, each result and
  plain nearest rounding are refined by integer coordinate descent on the
  same quadratic, and the best is kept - so it is never worse than nearest.
* ``"optimal"`` is the exact minimiser on the grid: Schnorr-Euchner
  depth-first sphere decoding on that Cholesky factor, with the code bounds
  enforced at every level and the ``"hessian"`` point (or a better objective
  already reached on another scale) as the initial radius.  A singular ``H``
  is flat along its null space, where nothing bounds the search: the
  dependent features keep their ``"hessian"`` codes and the search is exact
  over the others given those.

Cost of ``"optimal"``: exact box-constrained integer least squares is
NP-hard; enumeration is fast when ``D H D`` is reasonably conditioned (the
California Housing model: < 0.5 s for a full scale search at any width) but
can blow up when several features contribute
orders of magnitude less than others *and* the data are strongly collinear.
Each solve is capped at ``spec.max_nodes`` (~2 s per 1e6 nodes in pure
Python) and then raises :class:`SearchBudgetExceeded` rather than return a
non-optimal point under the "optimal" name.

Grids
-----
``per_tensor`` uses one float32 scale.  ``per_feature_pow2`` gives feature
``j`` the step ``scale * 2**e_j`` (int8 ``e_j``) with ``e_j`` chosen so
``w_j`` lands near the top of the code range (the finer of two neighbouring
exponents when clipping is cheaper than coarser rounding, which matters at 2-3
bits).  ``scale="search"`` scans log-spaced scales (one octave suffices for
pow2, the exponents absorb whole powers of two; ``[s/4, s]`` per-tensor),
refines around the winner and, for pow2, runs +-1 coordinate descent on the
exponents - each candidate rounded with the chosen method and scored by the
calibration objective.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "QuantizationSpec",
    "QuantizedLinearModel",
    "SearchBudgetExceeded",
    "calibration_objective",
    "default_spec",
    "pack_codes",
    "quantize_linear_model",
    "round_to_grid",
    "unpack_codes",
]

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("per_tensor", "per_feature_pow2")
# "auto": "optimal" when every solve of its search fits max_nodes, else "hessian" (the model
# records which it got).
ROUNDINGS = ("nearest", "hessian", "optimal", "auto")
SCALES = ("minmax", "search")
INTERCEPT_DTYPES = ("float64", "float32", "int32")
MIN_BITS, MAX_BITS = 2, 16

FORMAT = "mlops-lr/quantized-linear/1"  # the JSON layout of QuantizedLinearModel.to_dict
_DOCUMENT_KEYS = frozenset(
    {
        "format",
        "spec",
        "n_features",
        "codes",
        "scale",
        "zero_point",
        "exponents",
        "intercept",
        "intercept_scale",
    }
)
_EXP_MIN, _EXP_MAX = -128, 127  # int8 exponent range
_INT32_MAX = 2**31 - 1
_SEARCH_POINTS = 48  # log-spaced scale candidates in the coarse pass
_REFINE_POINTS = 24  # candidates in the refinement pass around the best one
_PER_TENSOR_SEARCH_OCTAVES = 2.0  # per-tensor scale searched in [s_mm/4, s_mm]
_POLISH_SWEEPS = 10  # cap on coordinate-descent sweeps in "hessian"
_WEAKER_ROUNDING = {"hessian": "nearest", "optimal": "hessian"}  # seeds of the greedy search


class SearchBudgetExceeded(RuntimeError):
    """Raised when ``rounding="optimal"`` needs more than ``max_nodes`` nodes.

    ``"optimal"`` promises the exact minimiser on its grid; silently returning
    the best point found so far would make that promise (and every number
    derived from it) false, so the search fails loudly instead.  Callers who
    can live with an approximation should use ``rounding="hessian"``, which is
    also the point the exact search starts from.
    """


@dataclass(frozen=True)
class QuantizationSpec:
    """How to quantize the coefficients of a linear model.

    Parameters
    ----------
    bits : int
        Code width, 2..16.
    scheme : {"symmetric", "asymmetric"}
        ``"symmetric"``: signed codes in ``[-(2**(bits-1)-1), 2**(bits-1)-1]``,
        zero point 0.  ``"asymmetric"``: unsigned codes in ``[0, 2**bits-1]``
        with an integer zero point, so 0.0 is exactly representable.
    granularity : {"per_tensor", "per_feature_pow2"}
        ``"per_feature_pow2"`` adds one int8 exponent per feature:
        ``w_q[j] = scale * 2**exponent[j] * (code[j] - zero_point)``.
    rounding : {"nearest", "hessian", "optimal", "auto"}
        See the module docstring; ``"auto"`` is ``"optimal"`` when its search fits
        ``max_nodes``, else ``"hessian"`` (the quantized model's spec says which).
    scale : {"minmax", "search"}
        ``"minmax"`` covers the coefficient range (including 0 for
        asymmetric); ``"search"`` picks, from a log-spaced candidate set, the
        scale (and implied exponents) minimising the calibration objective
        under the chosen rounding.
    bias_correction : bool
        Recompute the intercept as ``b + mean(X_calib) @ (w - w_q)``.
    intercept_dtype : {"float64", "float32", "int32"}
        Storage of the intercept.  ``"int32"`` stores an int32 code on its own
        power-of-two scale (one int8 exponent), never the coefficient scale.
    max_nodes : int
        Node budget of one sphere-decoding solve (``rounding="optimal"``);
        exceeding it raises :class:`SearchBudgetExceeded`.
    """

    bits: int = 8
    scheme: str = "symmetric"
    granularity: str = "per_tensor"
    rounding: str = "nearest"
    scale: str = "minmax"
    bias_correction: bool = True
    intercept_dtype: str = "float64"
    max_nodes: int = 1_000_000

    def __post_init__(self) -> None:
        if not _is_int(self.bits) or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be an int in {MIN_BITS}..{MAX_BITS}, got {self.bits!r}")
        for name, allowed in (
            ("scheme", SCHEMES),
            ("granularity", GRANULARITIES),
            ("rounding", ROUNDINGS),
            ("scale", SCALES),
            ("intercept_dtype", INTERCEPT_DTYPES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not isinstance(self.bias_correction, (bool, np.bool_)):
            raise ValueError(f"bias_correction must be True or False, got {self.bias_correction!r}")
        if not _is_int(self.max_nodes) or self.max_nodes < 1:
            raise ValueError(f"max_nodes must be a positive int, got {self.max_nodes!r}")

    @property
    def qmin(self) -> int:
        """Smallest integer code."""
        return 0 if self.scheme == "asymmetric" else -(2 ** (self.bits - 1) - 1)

    @property
    def qmax(self) -> int:
        """Largest integer code."""
        if self.scheme == "asymmetric":
            return 2**self.bits - 1
        return 2 ** (self.bits - 1) - 1

    @property
    def code_dtype(self) -> np.dtype:
        """Smallest numpy integer dtype holding ``[qmin, qmax]``."""
        if self.scheme == "asymmetric":
            return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)
        return np.dtype(np.int8 if self.bits <= 8 else np.int16)


def spec_from(settings: object, fit_intercept: bool = True) -> QuantizationSpec:
    """A spec from any object with the spec's field names as attributes (a config, an
    estimator). A model fitted without an intercept keeps none: no bias correction."""
    spec = QuantizationSpec(
        **{
            field.name: getattr(settings, field.name)
            for field in dataclasses.fields(QuantizationSpec)
        }
    )
    return spec if fit_intercept else replace(spec, bias_correction=False)


def default_spec(bits: int = 8) -> QuantizationSpec:
    """Recommended preset: symmetric, per-feature pow2, optimal rounding (when its search fits
    the budget, else Hessian: ``"auto"``), scale search."""
    return QuantizationSpec(
        bits=bits,
        scheme="symmetric",
        granularity="per_feature_pow2",
        rounding="auto",
        scale="search",
        bias_correction=True,
        intercept_dtype="float32",
    )


@dataclass(frozen=True)
class QuantizedLinearModel:
    """A linear model with integer-coded coefficients.

    Attributes
    ----------
    codes : np.ndarray
        Integer codes, dtype ``spec.code_dtype``.
    scale : float
        Coefficient scale (a float32-representable value; stored as float32).
    zero_point : int
        Integer zero point (always 0 for the symmetric scheme; not stored).
    exponents : np.ndarray
        int8 per-feature power-of-two exponents (all zero for per_tensor; only
        stored for per_feature_pow2).
    intercept : float or int
        Stored intercept: the float64/float32 value, or the int32 code.
    intercept_scale : float
        1.0 for float intercepts, ``2**k`` (k stored as int8) for int32.
    spec : QuantizationSpec
        The spec that produced the model.
    """

    codes: np.ndarray
    scale: float
    zero_point: int
    exponents: np.ndarray
    intercept: float | int
    intercept_scale: float
    spec: QuantizationSpec

    def coef(self) -> np.ndarray:
        """Dequantized coefficients, float64."""
        steps = self.scale * np.exp2(self.exponents.astype(np.float64))
        return steps * (self.codes.astype(np.float64) - self.zero_point)

    def intercept_value(self) -> float:
        """Dequantized intercept."""
        return float(self.intercept) * self.intercept_scale

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions ``X @ coef() + intercept_value()``."""
        return np.asarray(X, dtype=np.float64) @ self.coef() + self.intercept_value()

    def storage_bytes(self) -> int:
        """Bytes needed to store the model's numbers.

        Packed codes (``ceil(n * bits / 8)``), a float32 scale, the zero point
        (asymmetric only, one code width), int8 exponents (per_feature_pow2
        only) and the intercept (8 / 4 / 4+1 bytes).  The spec itself
        (bits, scheme, ...) is format metadata and not counted.
        """
        spec = self.spec
        total = len(pack_codes(self.codes, spec.bits)) + 4
        if spec.scheme == "asymmetric":
            total += math.ceil(spec.bits / 8)
        if spec.granularity == "per_feature_pow2":
            total += self.exponents.size
        total += {"float64": 8, "float32": 4, "int32": 5}[spec.intercept_dtype]
        return total

    # ------------------------------------------------------------------ #
    # Safe serialisation: plain JSON-compatible values, no pickle.
    # ------------------------------------------------------------------ #
    def to_dict(self) -> dict:
        """The model as JSON-compatible values: the spec, the bit-packed codes (base64), the
        scale, zero point, exponents and intercept. Deterministic: same model, same dict."""
        spec = self.spec
        return {
            "format": FORMAT,
            "spec": dataclasses.asdict(spec),
            "n_features": int(self.codes.size),
            "codes": base64.b64encode(pack_codes(self.codes, spec.bits)).decode("ascii"),
            "scale": float(self.scale),
            "zero_point": int(self.zero_point),
            "exponents": [int(e) for e in self.exponents],
            "intercept": self.intercept
            if isinstance(self.intercept, int)
            else float(self.intercept),
            "intercept_scale": float(self.intercept_scale),
        }

    @classmethod
    def from_dict(cls, data: dict) -> QuantizedLinearModel:
        """Inverse of :meth:`to_dict`; accepts only documents it would write itself.

        Raises
        ------
        ValueError
            Not an object of this format, a missing or unknown key, a value of the wrong type or
            out of range, or a document that does not re-encode to itself.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if set(data) != _DOCUMENT_KEYS:
            raise ValueError(f"keys must be exactly {sorted(_DOCUMENT_KEYS)}")
        if not isinstance(data["spec"], dict):
            raise ValueError("spec must be an object")
        spec = QuantizationSpec(**data["spec"])
        n, zero_point, exponents = data["n_features"], data["zero_point"], data["exponents"]
        if not _is_int(n) or n < 1:
            raise ValueError("n_features must be a positive integer")
        if not _is_int(zero_point) or not spec.qmin <= zero_point <= spec.qmax:
            raise ValueError(f"zero_point must be an integer in [{spec.qmin}, {spec.qmax}]")
        if spec.scheme == "symmetric" and zero_point != 0:
            raise ValueError("a symmetric model has zero_point 0")
        if not isinstance(exponents, list) or len(exponents) != n:
            raise ValueError("exponents must be a list of one integer per feature")
        if not all(_is_int(e) and _EXP_MIN <= e <= _EXP_MAX for e in exponents):
            raise ValueError(f"exponents must be integers in [{_EXP_MIN}, {_EXP_MAX}]")
        if spec.granularity == "per_tensor" and any(exponents):
            raise ValueError("a per_tensor model has all exponents 0")
        scale, intercept_scale = data["scale"], data["intercept_scale"]
        if not _is_positive_float(scale) or not _is_positive_float(intercept_scale):
            raise ValueError("scale and intercept_scale must be positive finite numbers")
        intercept = data["intercept"]
        if spec.intercept_dtype == "int32":
            if not _is_int(intercept) or abs(intercept) > _INT32_MAX:
                raise ValueError("an int32 intercept must be an integer code")
            if not math.log2(intercept_scale).is_integer():
                raise ValueError("an int32 intercept_scale must be a power of two")
        elif not _is_finite_number(intercept) or intercept_scale != 1.0:
            raise ValueError("a float intercept must be finite, with intercept_scale 1.0")
        packed = base64.b64decode(data["codes"], validate=True)
        codes = unpack_codes(packed, spec.bits, n, signed=spec.scheme == "symmetric")
        if codes.min() < spec.qmin or codes.max() > spec.qmax:
            raise ValueError(f"codes out of range [{spec.qmin}, {spec.qmax}]")
        model = cls(
            codes=codes.astype(spec.code_dtype),
            scale=float(scale),
            zero_point=zero_point,
            exponents=np.asarray(exponents, dtype=np.int8),
            intercept=intercept if spec.intercept_dtype == "int32" else float(intercept),
            intercept_scale=float(intercept_scale),
            spec=spec,
        )
        if model.to_dict() != data:  # trailing bytes, stray padding bits
            raise ValueError("codes are not in canonical form")
        return model


# --------------------------------------------------------------------------- #
# Bit packing
# --------------------------------------------------------------------------- #
def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack integer codes into ``ceil(len(codes) * bits / 8)`` bytes.

    Codes are written LSB-first as ``bits``-bit two's-complement fields, so
    both signed codes in ``[-2**(bits-1), 2**(bits-1)-1]`` and unsigned codes
    in ``[0, 2**bits-1]`` are accepted.

    Parameters
    ----------
    codes : np.ndarray
        1-D integer array.
    bits : int
        Field width, 1..32.

    Returns
    -------
    bytes
    """
    codes = np.asarray(codes)
    if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError("codes must be a 1-D integer array")
    if not _is_int(bits) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an int in 1..32, got {bits!r}")
    values = codes.astype(np.int64)
    if values.size and (values.min() < -(2 ** (bits - 1)) or values.max() > 2**bits - 1):
        raise ValueError(f"codes do not fit in {bits} bits")
    fields = values & (2**bits - 1)
    bit_matrix = (fields[:, None] >> np.arange(bits)) & 1
    return np.packbits(bit_matrix.astype(np.uint8).ravel(), bitorder="little").tobytes()


def unpack_codes(buf: bytes, bits: int, n: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_codes`.

    Parameters
    ----------
    buf : bytes
        Packed data from :func:`pack_codes`.
    bits : int
        Field width used when packing.
    n : int
        Number of codes.
    signed : bool
        Sign-extend the fields (two's complement) if True.

    Returns
    -------
    np.ndarray
        int64 codes.
    """
    if not _is_int(bits) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an int in 1..32, got {bits!r}")
    if len(buf) * 8 < n * bits:
        raise ValueError(f"buffer holds {len(buf) * 8} bits, need {n * bits}")
    raw = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=n * bits, bitorder="little")
    fields = raw.reshape(n, bits).astype(np.int64) @ (
        np.int64(1) << np.arange(bits, dtype=np.int64)
    )
    if signed:
        fields = np.where(fields >= 2 ** (bits - 1), fields - 2**bits, fields)
    return fields


# --------------------------------------------------------------------------- #
# Calibration objective
# --------------------------------------------------------------------------- #
def calibration_objective(
    coef: np.ndarray,
    coef_q: np.ndarray,
    X_calib: np.ndarray | CalibrationMoments,
    intercept: float | None = None,
    intercept_q: float | None = None,
) -> float:
    """Mean squared prediction difference on the calibration data.

    Parameters
    ----------
    coef, coef_q : np.ndarray
        Float and quantized coefficients.
    X_calib : np.ndarray or CalibrationMoments
        Calibration features (training split), or their moments.
    intercept, intercept_q : float, optional
        Float and quantized intercepts.  If omitted, the intercept is assumed
        bias-corrected exactly and the result is ``dw' S dw``.

    Returns
    -------
    float
        ``dw' S dw + (xbar . dw + db)**2`` with ``dw = coef_q - coef``,
        ``db = intercept_q - intercept`` (0 when omitted).
    """
    moments = CalibrationMoments.of(X_calib)
    dw = np.asarray(coef_q, dtype=np.float64) - np.asarray(coef, dtype=np.float64)
    value = float(dw @ moments.cov @ dw)
    if intercept is not None or intercept_q is not None:
        if intercept is None or intercept_q is None:
            raise ValueError("pass both intercept and intercept_q, or neither")
        value += float(moments.mean @ dw + (intercept_q - intercept)) ** 2
    return value


@dataclass(frozen=True)
class CalibrationMoments:
    """Mean and centred (ddof=0) covariance of the calibration features: all the calibration
    needs, so it can come from data streamed in batches (mlops_lr.sufficient)."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, X_calib: np.ndarray | CalibrationMoments) -> CalibrationMoments:
        """``X_calib``'s moments (or ``X_calib`` itself when it already is moments)."""
        return X_calib if isinstance(X_calib, CalibrationMoments) else cls.from_data(X_calib)

    @classmethod
    def from_data(cls, X: np.ndarray) -> CalibrationMoments:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError("X_calib must be a 2-D array with at least 2 rows")
        if not np.all(np.isfinite(X)):
            raise ValueError("X_calib contains non-finite values")
        mean = X.mean(axis=0)
        centred = X - mean
        return cls(mean=mean, cov=centred.T @ centred / X.shape[0])

    def hessian(self, bias_correction: bool) -> np.ndarray:
        """Quadratic form of the objective in ``dw``."""
        return self.cov if bias_correction else self.cov + np.outer(self.mean, self.mean)


# --------------------------------------------------------------------------- #
# Grids
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Grid:
    """``w = scale * 2**exponents * (q - zero_point)``, ``lo <= q <= hi``."""

    scale: float
    zero_point: int
    exponents: np.ndarray
    lo: int
    hi: int

    @property
    def steps(self) -> np.ndarray:
        return self.scale * np.exp2(self.exponents.astype(np.float64))

    def targets(self, coef: np.ndarray) -> np.ndarray:
        """Real-valued (unclipped) codes of ``coef``."""
        return coef / self.steps + self.zero_point

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return self.steps * (codes - self.zero_point)


def _f32(x: float) -> float:
    """Round to the nearest float32 value (the scale is stored as float32)."""
    return float(np.float32(x))


def _reference_range(coef: np.ndarray, spec: QuantizationSpec) -> tuple[float, int]:
    """Min-max scale and zero point of the per-tensor grid."""
    if spec.scheme == "symmetric":
        peak = float(np.max(np.abs(coef)))
        return (peak / spec.qmax if peak > 0 else 1.0), 0
    low, high = min(float(coef.min()), 0.0), max(float(coef.max()), 0.0)
    if high == low:
        return 1.0, 0
    scale = (high - low) / spec.qmax
    return scale, int(np.clip(round(-low / scale), 0, spec.qmax))


def _pow2_exponents(
    coef: np.ndarray, scale: float, zero_point: int, lo: int, hi: int
) -> np.ndarray:
    """Per-feature exponents minimising each coefficient's rounding error.

    For each ``w_j`` the finest exponent whose code range still contains
    ``w_j`` ("top of the range"), the next finer one (which clips ``w_j`` but
    can land closer at 2-3 bits) and the next coarser one (guards against
    ``log2`` round-off) are compared; the smallest nearest-rounding error
    wins, ties going to the finer grid.  Zero coefficients get exponent 0.
    """
    room = np.where(coef >= 0, hi - zero_point, zero_point - lo).astype(np.float64)
    magnitude = np.abs(coef)
    usable = (magnitude > 0) & (room > 0)
    top = np.zeros(coef.shape, dtype=np.int64)
    top[usable] = np.ceil(np.log2(magnitude[usable] / (scale * room[usable])))
    options = top[:, None] + np.array([-1, 0, 1])
    options = np.clip(options, _EXP_MIN, _EXP_MAX)
    steps = scale * np.exp2(options.astype(np.float64))
    codes = np.clip(np.rint(coef[:, None] / steps + zero_point), lo, hi)
    error = np.abs(steps * (codes - zero_point) - coef[:, None])
    chosen = options[np.arange(coef.size), np.argmin(error, axis=1)]
    return np.where(usable, chosen, 0).astype(np.int8)


def _make_grid(coef: np.ndarray, spec: QuantizationSpec, scale: float, zero_point: int) -> _Grid:
    scale = _f32(scale)
    if spec.granularity == "per_feature_pow2":
        exponents = _pow2_exponents(coef, scale, zero_point, spec.qmin, spec.qmax)
    else:
        exponents = np.zeros(coef.shape, dtype=np.int8)
    return _Grid(scale, zero_point, exponents, spec.qmin, spec.qmax)


def _candidate_grids(coef: np.ndarray, spec: QuantizationSpec) -> list[_Grid]:
    """The coarse candidate set: one grid (minmax) or a log-spaced scale sweep.

    per_tensor searches ``scale in [s_mm / 4, s_mm]`` (smaller scales trade
    clipping of the largest coefficient for resolution).  per_feature_pow2
    only needs one octave ``(s_mm / 2, s_mm]``: the exponents absorb whole
    powers of two.  The asymmetric zero point keeps its relative position.
    """
    scale, zero_point = _reference_range(coef, spec)
    if spec.scale == "minmax":
        return [_make_grid(coef, spec, scale, zero_point)]
    octaves = 1.0 if spec.granularity == "per_feature_pow2" else _PER_TENSOR_SEARCH_OCTAVES
    factors = np.exp2(-np.linspace(0.0, octaves, _SEARCH_POINTS, endpoint=False))
    return [_make_grid(coef, spec, scale * f, zero_point) for f in factors]


def _refined_grids(
    coef: np.ndarray, spec: QuantizationSpec, best: _Grid, spacing: float
) -> list[_Grid]:
    """Candidates log-spaced within one coarse spacing around ``best``."""
    factors = np.exp2(np.linspace(-spacing, spacing, _REFINE_POINTS + 2)[1:-1])
    return [_make_grid(coef, spec, best.scale * f, best.zero_point) for f in factors]


# --------------------------------------------------------------------------- #
# Rounding: box-constrained integer least squares  min ||R (q - t)||^2
# --------------------------------------------------------------------------- #
def _round_nearest(targets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.rint(targets), lo, hi).astype(np.int64)


def _ils_cost(hessian_codes: np.ndarray, codes: np.ndarray, targets: np.ndarray) -> float:
    d = codes - targets
    return float(d @ hessian_codes @ d)


def _ridged(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` plus a 1e-12 relative ridge: positive definite even when a feature is
    constant or two are collinear (their codes then barely affect the objective)."""
    ridge = 1e-12 * float(np.mean(np.diag(matrix))) or 1e-300
    return matrix + ridge * np.eye(len(matrix))


def _cholesky_upper(matrix: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor; the ridge of :func:`_ridged` rescues singular input."""
    from scipy import linalg  # deferred: configs and predictors import this module, not SciPy

    try:
        return linalg.cholesky(matrix, lower=False)
    except linalg.LinAlgError:
        return linalg.cholesky(_ridged(matrix), lower=False)


def _sorted_order(hessian_codes: np.ndarray, targets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Decision order (first decided first) for error feedback and the search.

    Features whose target lies outside the code box go first, so their
    unavoidable clipping error is charged at the top of the search tree (and
    compensated by the others in error feedback).  Within each group the
    greedy V-BLAST rule applies: decide next the feature with the largest
    precision conditional on the still-undecided ones.
    """
    clipped = (targets < lo - 0.5) | (targets > hi + 0.5)
    remaining = list(range(len(targets)))
    order = []
    while remaining:
        sub = hessian_codes[np.ix_(remaining, remaining)]
        conditional = 1.0 / np.diag(np.linalg.inv(_ridged(sub)))
        priority = np.where(clipped[remaining], np.inf, 0.0)
        pick = int(np.lexsort((conditional, priority))[-1])
        order.append(remaining.pop(pick))
    return np.array(order)


@dataclass(frozen=True)
class _Problem:
    """``min ||R (q - t)||^2`` over integers ``lo <= q <= hi`` in a fixed order.

    ``R`` is the upper Cholesky factor of the permuted code-domain Hessian;
    row ``k`` involves ``q[k:]``, so decisions run from the last index down.
    """

    R: np.ndarray
    targets: np.ndarray
    perm: np.ndarray  # problem index -> feature index
    lo: int
    hi: int

    @classmethod
    def build(
        cls, hessian_codes: np.ndarray, targets: np.ndarray, order: np.ndarray, lo: int, hi: int
    ) -> _Problem:
        perm = order[::-1]
        R = _cholesky_upper(hessian_codes[np.ix_(perm, perm)])
        return cls(R, targets[perm], perm, lo, hi)

    def to_features(self, codes: list[int]) -> np.ndarray:
        out = np.empty(len(codes), dtype=np.int64)
        out[self.perm] = codes
        return out

    def babai(self) -> np.ndarray:
        """Nearest plane (= GPTQ error feedback) with clipping to the box."""
        R, t = self.R, self.targets
        q = np.zeros(len(t))
        for k in range(len(t) - 1, -1, -1):
            centre = t[k] - R[k, k + 1 :] @ (q[k + 1 :] - t[k + 1 :]) / R[k, k]
            q[k] = min(max(round(centre), self.lo), self.hi)
        return self.to_features([int(v) for v in q])

    def sphere_decode(self, radius: float, max_nodes: int) -> list[int] | None:
        """Exact Schnorr-Euchner enumeration of the box below ``radius``.

        Returns the minimiser (problem order) if its cost is ``< radius``,
        else None.  Candidates at a level are visited in order of distance to
        the conditional centre, restricted to ``[lo, hi]``, so the first one
        whose partial cost reaches the radius closes the level; every leaf
        that improves shrinks the radius.
        """
        n = len(self.targets)
        R = self.R.tolist()
        t = self.targets.tolist()
        lo, hi = self.lo, self.hi
        diag2 = [R[k][k] ** 2 for k in range(n)]
        ratio = [[R[k][j] / R[k][k] for j in range(n)] for k in range(n)]
        best, best_q = radius, None
        q = [0] * n
        partial = [0.0] * (n + 1)
        centre = [0.0] * n
        down = [0] * n  # next unvisited candidate below the centre
        up = [0] * n  # next unvisited candidate above the centre
        nodes = 0

        def enter(k: int) -> None:
            c = t[k] - sum(ratio[k][j] * (q[j] - t[j]) for j in range(k + 1, n))
            centre[k] = c
            down[k] = min(math.floor(c), hi)
            up[k] = max(math.floor(c) + 1, lo)

        k = n - 1
        enter(k)
        while True:
            c = centre[k]
            has_down, has_up = down[k] >= lo, up[k] <= hi
            if not (has_down or has_up):
                k += 1
                if k == n:
                    return best_q
                continue
            if has_down and (not has_up or c - down[k] <= up[k] - c):
                x = down[k]
                down[k] -= 1
            else:
                x = up[k]
                up[k] += 1
            nodes += 1
            if nodes > max_nodes:
                raise SearchBudgetExceeded(
                    f"rounding='optimal' exceeded max_nodes={max_nodes} in one solve "
                    f"(best objective so far {best:.6g}); raise max_nodes or use "
                    "rounding='hessian'"
                )
            cost = partial[k + 1] + diag2[k] * (x - c) ** 2
            if cost >= best:  # the rest of this level is farther from the centre
                down[k], up[k] = lo - 1, hi + 1
                continue
            q[k] = x
            if k == 0:
                best, best_q = cost, list(q)
            else:
                partial[k] = cost
                k -= 1
                enter(k)


def _polish(
    hessian_codes: np.ndarray, targets: np.ndarray, codes: np.ndarray, lo: int, hi: int
) -> np.ndarray:
    """Integer coordinate descent: move each code to its best value given the
    others (clipped to the box) until a full sweep changes nothing.

    Every accepted move strictly lowers the objective.  Sweeps are capped at
    ``_POLISH_SWEEPS``: on an ill-conditioned Hessian (e.g. no bias
    correction, where Longitude's mean of -120 couples every feature)
    coordinate descent zig-zags for thousands of sweeps for little gain.
    """
    codes = codes.copy()
    gradient = hessian_codes @ (codes - targets)  # half the gradient of the quadratic
    diag = np.diag(hessian_codes)
    improved, sweeps = True, 0
    while improved and sweeps < _POLISH_SWEEPS:
        improved, sweeps = False, sweeps + 1
        for j in range(len(codes)):
            if diag[j] <= 0:  # a constant feature: its code does not change the objective
                continue
            best = min(max(round(codes[j] - gradient[j] / diag[j]), lo), hi)
            move = best - codes[j]
            if move and move * (2 * gradient[j] + move * diag[j]) < 0:
                codes[j] = best
                gradient += move * hessian_codes[:, j]
                improved = True
    return codes


def _hessian_round(hessian_codes: np.ndarray, targets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """GPTQ-style error feedback plus local refinement; keeps the best.

    Starting points: nearest rounding, and error feedback (Babai) in GPTQ's
    act-order (descending Hessian diagonal) and in :func:`_sorted_order`.
    Each is refined by :func:`_polish`; the lowest objective wins, so the
    result is never worse than nearest rounding.

    No dampening is applied.  On the code-domain Hessian ``D H D`` a ridge is
    only needed for singular ``H`` (handled by :func:`_cholesky_upper`); the
    usual "1% of mean diagonal" ridge on the raw ``H`` - whose diagonal spans
    0.2 (AveBedrms) to 1.3e6 (Population) - would swamp the off-diagonal terms
    and turn GPTQ into plain rounding.
    """
    act_order = np.argsort(-np.diag(hessian_codes), kind="stable")
    starts = [_round_nearest(targets, lo, hi)] + [
        _Problem.build(hessian_codes, targets, order, lo, hi).babai()
        for order in (act_order, _sorted_order(hessian_codes, targets, lo, hi))
    ]
    refined = [_polish(hessian_codes, targets, q, lo, hi) for q in starts]
    return min(refined, key=lambda q: _ils_cost(hessian_codes, q, targets))


def _optimal_round(
    hessian_codes: np.ndarray, targets: np.ndarray, lo: int, hi: int, radius: float, max_nodes: int
) -> np.ndarray | None:
    """Exact minimiser on the grid, or None if nothing is below ``radius``.

    The ``"hessian"`` result is the incumbent; ``radius`` (an objective
    already achieved elsewhere, e.g. on another scale) can only shrink the
    sphere.  A singular Hessian (a constant feature, or one that is an exact
    combination of others) is flat along its null space, where no sphere is
    bounded: the dependent features keep the incumbent's codes and the search
    is exact over the others, given those.
    """
    hessian_result = _hessian_round(hessian_codes, targets, lo, hi)
    incumbent_cost = _ils_cost(hessian_codes, hessian_result, targets)
    incumbent = hessian_result if incumbent_cost < radius else None
    radius = min(radius, incumbent_cost)
    free, fixed = _independent_features(hessian_codes)
    if not free.size:  # every feature constant: every code costs the same
        return incumbent
    codes = hessian_result.copy()
    # With the fixed codes set, the cost is a quadratic in the free ones: its minimum over
    # reals sits at the shifted targets, plus a constant (the Schur complement's part).
    H_ff = hessian_codes[np.ix_(free, free)]
    offset = codes[fixed] - targets[fixed]
    shift = np.linalg.solve(H_ff, hessian_codes[np.ix_(free, fixed)] @ offset) if fixed.size else 0
    free_targets = targets[free] - shift
    real_minimiser = codes.astype(np.float64)
    real_minimiser[free] = free_targets
    constant = _ils_cost(hessian_codes, real_minimiser, targets)
    problem = _Problem.build(H_ff, free_targets, _sorted_order(H_ff, free_targets, lo, hi), lo, hi)
    found = problem.sphere_decode(radius - constant, max_nodes)
    if found is None:
        return incumbent
    codes[free] = problem.to_features(found)
    return codes


def _independent_features(hessian_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features whose Hessian columns are linearly independent (pivoted QR, relative
    tolerance 1e-10), and the rest, which depend on them."""
    from scipy import linalg  # deferred, as in _cholesky_upper

    _, r, pivots = linalg.qr(hessian_codes, pivoting=True, mode="economic")
    diagonal = np.abs(np.diag(r))
    rank = int(np.sum(diagonal > 1e-10 * diagonal[0])) if diagonal[0] > 0 else 0
    return np.sort(pivots[:rank]), np.sort(pivots[rank:])


# --------------------------------------------------------------------------- #
# Grid + rounding search
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Solution:
    grid: _Grid
    codes: np.ndarray
    objective: float


@dataclass(frozen=True)
class _Blocks:
    """A block-diagonal Hessian as its diagonal blocks (``slices`` of the coefficients and
    their matrices): independent problems that share a grid scale, each rounded alone, so
    the cost grows with the blocks' sizes, not with their total."""

    slices: tuple[slice, ...]
    matrices: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, hessian: np.ndarray, sizes: Sequence[int]) -> _Blocks:
        starts = np.cumsum([0, *sizes])
        slices = tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(starts))
        return cls(slices, tuple(hessian[part, part] for part in slices))


# Relative objective difference below which two solutions tie (see _better).
_TIE = 1e-12


def _solve_on_grid(
    coef: np.ndarray,
    grid: _Grid,
    hessian: np.ndarray,
    spec: QuantizationSpec,
    radius: float = math.inf,
) -> _Solution | None:
    """Round ``coef`` on ``grid`` with ``spec.rounding``.

    Returns None only for ``"optimal"`` when no point beats ``radius``.  The
    code-domain cost ``(q - t)' D H D (q - t)`` equals the objective
    ``dw' H dw`` because ``dw = D (q - t)``.  Block-diagonal ``hessian``: each block
    rounded alone, the objectives summed.
    """
    if isinstance(hessian, _Blocks):
        parts = []
        for part, matrix in zip(hessian.slices, hessian.matrices, strict=True):
            found = _solve_on_grid(
                coef[part], replace(grid, exponents=grid.exponents[part]), matrix, spec
            )
            parts.append(found)
        objective = sum(found.objective for found in parts)
        if spec.rounding == "optimal" and not objective < radius:
            return None
        return _Solution(grid, np.concatenate([found.codes for found in parts]), objective)
    targets = grid.targets(coef)
    hessian_codes = hessian * np.outer(grid.steps, grid.steps)
    if spec.rounding == "nearest":
        codes = _round_nearest(targets, grid.lo, grid.hi)
    elif spec.rounding == "hessian":
        codes = _hessian_round(hessian_codes, targets, grid.lo, grid.hi)
    else:
        codes = _optimal_round(hessian_codes, targets, grid.lo, grid.hi, radius, spec.max_nodes)
        if codes is None:
            return None
    dw = grid.dequantize(codes) - coef
    return _Solution(grid, codes, float(dw @ hessian @ dw))


def _best_of(
    coef: np.ndarray,
    grids: list[_Grid],
    hessian: np.ndarray,
    spec: QuantizationSpec,
    best: _Solution | None,
) -> _Solution | None:
    """Lowest-objective solution over ``grids`` (ties keep the earlier one)."""
    for grid in grids:
        found = _solve_on_grid(coef, grid, hessian, spec, best.objective if best else math.inf)
        if found is not None and (best is None or _better(found, best)):
            best = found
    return best


def _better(found: _Solution, best: _Solution) -> bool:
    """``found`` beats ``best`` by more than rounding: objectives within 1e-12 of each other
    are a tie, which keeps ``best``. The searches are greedy, so without this margin a
    last-bit difference in the calibration moments (batches merged in another order) could
    send them down another path."""
    return found.objective < best.objective * (1.0 - _TIE)


def _refine_exponents(
    coef: np.ndarray, best: _Solution, hessian: np.ndarray, spec: QuantizationSpec
) -> _Solution:
    """Coordinate descent on the per-feature exponents (one step of +-1).

    Strictly decreasing objective over a finite set, so it terminates. Block-diagonal
    ``hessian``: a block's exponents change only its own objective, so each block is refined
    alone.
    """
    if isinstance(hessian, _Blocks):
        parts = []
        for part, matrix in zip(hessian.slices, hessian.matrices, strict=True):
            grid = replace(best.grid, exponents=best.grid.exponents[part])
            dw = grid.dequantize(best.codes[part]) - coef[part]
            start = _Solution(grid, best.codes[part], float(dw @ matrix @ dw))
            parts.append(_refine_exponents(coef[part], start, matrix, spec))
        grid = replace(best.grid, exponents=np.concatenate([p.grid.exponents for p in parts]))
        codes = np.concatenate([p.codes for p in parts])
        return _Solution(grid, codes, sum(p.objective for p in parts))
    improved = True
    while improved:
        improved = False
        for j in range(coef.size):
            for move in (-1, 1):
                exponents = best.grid.exponents.astype(np.int64)
                exponents[j] += move
                if not _EXP_MIN <= exponents[j] <= _EXP_MAX:
                    continue
                grid = replace(best.grid, exponents=exponents.astype(np.int8))
                found = _solve_on_grid(coef, grid, hessian, spec, best.objective)
                if found is not None and _better(found, best):
                    best, improved = found, True
    return best


def _search(coef: np.ndarray, spec: QuantizationSpec, hessian: np.ndarray | _Blocks) -> _Solution:
    """Grid and codes minimising the objective for ``spec``.

    ``scale="search"``: coarse log-spaced pass (plus the final grid of the
    next-cheaper rounding), a finer pass around the winner, then
    (per_feature_pow2) exponent coordinate descent.  The best
    objective so far is the sphere radius of every later exact solve, so
    hopeless candidates are rejected after a handful of nodes.
    """
    grids = _candidate_grids(coef, spec)
    if spec.scale == "search" and spec.rounding in _WEAKER_ROUNDING:
        # The search is greedy, so seed it with the grid the next-cheaper
        # rounding ends on: then optimal <= hessian <= nearest holds after
        # search too, not only on a fixed grid.
        weaker = replace(spec, rounding=_WEAKER_ROUNDING[spec.rounding])
        grids.append(_search(coef, weaker, hessian).grid)
    best = _best_of(coef, grids, hessian, spec, None)
    if spec.scale == "search":
        spacing = math.log2(grids[0].scale / grids[1].scale)
        best = _best_of(coef, _refined_grids(coef, spec, best.grid, spacing), hessian, spec, best)
        if spec.granularity == "per_feature_pow2":
            best = _refine_exponents(coef, best, hessian, spec)
    return best


# --------------------------------------------------------------------------- #
# Public entry point
# --------------------------------------------------------------------------- #
def quantize_linear_model(
    coef: np.ndarray,
    intercept: float,
    spec: QuantizationSpec,
    X_calib: np.ndarray | CalibrationMoments,
    blocks: Sequence[int] | None = None,
) -> QuantizedLinearModel:
    """Quantize a fitted linear model's coefficients.

    Parameters
    ----------
    coef : np.ndarray
        Float coefficients, shape ``(n_features,)``.
    intercept : float
        Float intercept.
    spec : QuantizationSpec
        Quantization settings.
    X_calib : np.ndarray or CalibrationMoments
        Calibration features, shape ``(n_samples, n_features)`` - the training
        split, never test data - or their :class:`CalibrationMoments`.
    blocks : sequence of int, optional
        Sizes of consecutive groups of coefficients whose objective terms are independent
        (a block-diagonal Hessian): each group is rounded alone on the shared grid.

    Returns
    -------
    QuantizedLinearModel

    Raises
    ------
    ValueError
        On malformed inputs.
    SearchBudgetExceeded
        If ``rounding="optimal"`` exceeds ``spec.max_nodes`` in one solve.
    """
    if spec.rounding == "auto":
        try:
            return quantize_linear_model(
                coef, intercept, replace(spec, rounding="optimal"), X_calib
            )
        except SearchBudgetExceeded:
            return quantize_linear_model(
                coef, intercept, replace(spec, rounding="hessian"), X_calib
            )
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim != 1 or coef.size == 0 or not np.all(np.isfinite(coef)):
        raise ValueError("coef must be a non-empty 1-D array of finite values")
    if not math.isfinite(intercept):
        raise ValueError("intercept must be finite")
    moments = CalibrationMoments.of(X_calib)
    if moments.mean.size != coef.size:
        raise ValueError(f"X_calib has {moments.mean.size} features, coef has {coef.size}")

    hessian = moments.hessian(spec.bias_correction)
    best = _search(coef, spec, hessian if blocks is None else _Blocks.of(hessian, blocks))
    if not _is_positive_float(best.grid.scale):
        raise ValueError("the coefficients are too small or too large for a float32 scale")
    coef_q = best.grid.dequantize(best.codes)
    intercept_q = float(intercept)
    if spec.bias_correction:
        intercept_q += float(moments.mean @ (coef - coef_q))
    stored, intercept_scale = _store_intercept(intercept_q, spec.intercept_dtype)
    return QuantizedLinearModel(
        codes=best.codes.astype(spec.code_dtype),
        scale=best.grid.scale,
        zero_point=best.grid.zero_point,
        exponents=best.grid.exponents,
        intercept=stored,
        intercept_scale=intercept_scale,
        spec=spec,
    )


def quantize_rows_jointly(
    coefs: list[np.ndarray],
    intercepts: list[float],
    spec: QuantizationSpec,
    moments: list[CalibrationMoments],
) -> list[QuantizedLinearModel]:
    """Quantize several linear models on one grid scale (and zero point): the rows of a
    multinomial classifier, whose scores the integer-only C compares in one unit.

    Each row keeps its own exponents and intercept. The search minimises the sum of the rows'
    objectives (each on its own ``moments``: a block-diagonal Hessian), so each row's codes
    are as good as the shared scale allows; bias correction re-fits each row's intercept.

    Raises
    ------
    ValueError, SearchBudgetExceeded
        As :func:`quantize_linear_model`.
    """
    sizes = [np.asarray(coef).size for coef in coefs]
    if len(moments) != len(coefs) or any(
        m.mean.size != n for m, n in zip(moments, sizes, strict=True)
    ):
        raise ValueError("one set of moments per row, each of the row's size")
    # Each row's own quadratic form on the diagonal; a zero mean, so that the joint model's
    # intercept (discarded) moves nothing: each row's is re-fitted below.
    starts = np.cumsum([0, *sizes])
    hessian = np.zeros((starts[-1], starts[-1]))
    for m, start, stop in zip(moments, starts[:-1], starts[1:], strict=True):
        hessian[start:stop, start:stop] = m.hessian(spec.bias_correction)
    stacked = CalibrationMoments(mean=np.zeros(starts[-1]), cov=hessian)
    joint = quantize_linear_model(np.concatenate(coefs), 0.0, spec, stacked, blocks=sizes)
    rows = []
    for coef, intercept, m, start, stop in zip(
        coefs, intercepts, moments, starts[:-1], starts[1:], strict=True
    ):
        row = replace(joint, codes=joint.codes[start:stop], exponents=joint.exponents[start:stop])
        value = float(intercept)
        if spec.bias_correction:
            value += float(m.mean @ (np.asarray(coef, dtype=np.float64) - row.coef()))
        stored, intercept_scale = _store_intercept(value, spec.intercept_dtype)
        rows.append(replace(row, intercept=stored, intercept_scale=intercept_scale))
    return rows


def round_to_grid(
    model: QuantizedLinearModel, indices: np.ndarray, values: np.ndarray
) -> QuantizedLinearModel:
    """``model`` with the coefficients at ``indices`` replaced by ``values`` rounded to the
    nearest code of its grid (``per_feature_pow2``: each on the exponent the grid's rule picks
    for it). For coefficients the calibration data cannot see (a column that is always 0
    there), whose codes the objective leaves free; the intercept is unaffected."""
    spec = model.spec
    values = np.asarray(values, dtype=np.float64)
    if spec.granularity == "per_feature_pow2":
        exponents = _pow2_exponents(values, model.scale, model.zero_point, spec.qmin, spec.qmax)
    else:
        exponents = np.zeros(values.shape, dtype=np.int8)
    steps = model.scale * np.exp2(exponents.astype(np.float64))
    codes = model.codes.copy()
    codes[indices] = _round_nearest(values / steps + model.zero_point, spec.qmin, spec.qmax)
    all_exponents = model.exponents.copy()
    all_exponents[indices] = exponents
    return replace(model, codes=codes, exponents=all_exponents)


def _store_intercept(value: float, dtype: str) -> tuple[float | int, float]:
    """Stored intercept and its scale (1.0 for floats, 2**k for int32)."""
    if dtype == "float64":
        return value, 1.0
    if dtype == "float32":
        if not abs(value) <= float(np.finfo(np.float32).max):
            raise ValueError(f"intercept {value!r} is out of float32 range")
        return float(np.float32(value)), 1.0
    k = math.ceil(math.log2(abs(value) / _INT32_MAX)) if value != 0 else 0
    k = max(k, _EXP_MIN)
    if k > _EXP_MAX:
        raise ValueError(f"intercept {value!r} too large for int32 storage")
    code = round(value / 2.0**k)
    if abs(code) > _INT32_MAX:  # log2 rounding put it one binade too low
        k += 1
        code = round(value / 2.0**k)
    return int(code), 2.0**k


def _is_finite_number(value: object) -> bool:
    """A finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_float(value: object) -> bool:
    """A finite, positive JSON number (not a bool)."""
    return _is_finite_number(value) and value > 0


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

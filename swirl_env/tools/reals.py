"""Decisions about real numbers that are right or refused: signs, floors, digits shown.

sympy decides ``floor``, comparisons and zero tests of irrational values by evaluating them in
floating point, and an exact zero written irrationally fools it: ``(sqrt(2)+sqrt(3))**2 - 5 -
2*sqrt(6)`` is 0, yet sympy evaluates its reciprocal to a number of over 100 digits instead of
refusing to divide by zero, and a floor taken at too few digits comes out -1. Here every decision comes from an *enclosure*: an interval
guaranteed (outward rounding, :mod:`mpmath`'s interval arithmetic) to hold the exact value,
tightened with more bits until it decides. What no enclosure can decide is an exact tie: then
sympy must prove the value zero (``equals``, which proves with a minimal polynomial or a
simplification, never by sampling), or the decision is refused with :class:`Undecidable`.

:class:`Opaque` holds an exact value that sympy must not do algebra on (a root of a 2,568-digit
integer factorises for minutes): it is an atom to sympy, and its enclosure is its inner value's,
so decisions about it stay exact.

Example:
    >>> import sympy
    >>> zero = (sympy.sqrt(2) + sympy.sqrt(3))**2 - 5 - 2*sympy.sqrt(6)
    >>> abs((1 / zero).evalf(5)) > 10**100  # sympy: a huge number where there is none
    True
    >>> sign(zero), floor(zero), floor(zero - sympy.Rational(1, 10**200))
    (0, 0, -1)
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator

import mpmath
import sympy
from mpmath import libmp
from mpmath.ctx_iv import MPIntervalContext

from swirl_env.tools.base import ToolError

FIRST_BITS = 64
PROOF_BITS = 1000  # a value within 2**-PROOF_BITS of 0 is worth a proof attempt
MAX_BITS = 1 << 15  # ~9,860 decimal digits: enough to separate any two values of the calculator's range
_CONTEXTS = threading.local()  # mpmath keeps precision in its context: one context per thread


class Undecidable(ToolError):
    """A sign, floor or comparison that no enclosure separates and no proof settles."""


class _NotEnclosable(Exception):
    """An expression this module cannot bound: it is complex, infinite, or of an unknown kind."""


class Opaque(sympy.AtomicExpr):
    """An exact real value that sympy treats as an atom: no algebra, exact decisions.

    Example:
        >>> big = sympy.Pow(sympy.factorial(300) + 1, sympy.Rational(1, 2), evaluate=False)
        >>> x = Opaque(big)
        >>> (x - x, sign(x), x.is_positive)
        (0, 1, True)
    """

    __slots__ = ("inner",)
    is_number = True
    is_extended_real = True
    is_finite = True
    is_commutative = True

    def __new__(cls, inner: sympy.Expr):
        obj = super().__new__(cls)
        obj.inner = inner
        return obj

    def _hashable_content(self) -> tuple:
        return (self.inner,)

    def __getnewargs__(self) -> tuple:
        return (self.inner,)

    def _eval_evalf(self, prec: int) -> sympy.Float:
        lo, hi = enclose(self.inner, prec + 20)
        return sympy.Float._new(libmp.mpf_shift(libmp.mpf_add(lo, hi, prec + 20), -1), prec)

    def _eval_is_extended_positive(self) -> bool | None:
        return _quick_sign(self.inner, positive=True)

    def _eval_is_extended_negative(self) -> bool | None:
        return _quick_sign(self.inner, positive=False)

    def _eval_is_zero(self) -> bool | None:
        return False if _quick_sign(self.inner, positive=True) is not None else None

    def _sympystr(self, printer) -> str:
        return printer.doprint(self.inner)


@functools.lru_cache(maxsize=4096)
def enclose(x: sympy.Expr, bits: int) -> tuple[tuple, tuple]:
    """Raw mpmath endpoints ``(lo, hi)`` with ``lo <= x <= hi``, computed at ``bits`` of precision.

    Raises:
        Undecidable: the value is not real and finite, or of a kind this module cannot bound.
    """
    ctx = _context()
    ctx.prec = bits
    try:
        interval = _interval(x, ctx)
    except (_NotEnclosable, libmp.ComplexResult, ZeroDivisionError, ValueError) as error:
        raise Undecidable(f"cannot bound the value {short(x)} ({error or type(error).__name__})") from None
    lo, hi = interval._mpi_
    if not (_finite(lo) and _finite(hi)):
        raise Undecidable(f"cannot bound the value {short(x)} (it is not finite at {bits} bits)")
    return lo, hi


def sign(x: sympy.Expr) -> int:
    """-1, 0 or 1: from enclosures while they separate the value from 0, else from a proof of zero.

    Raises:
        Undecidable: a value that agrees with 0 to :data:`MAX_BITS` bits but is not proven 0.
    """
    if x.is_Rational:
        return (x.p > 0) - (x.p < 0)
    tried_proof = False
    for _, lo, hi in _tightening(x):
        if libmp.mpf_sign(lo) > 0:
            return 1
        if libmp.mpf_sign(hi) < 0:
            return -1
        if not tried_proof and max(_log2(lo), _log2(hi)) < -PROOF_BITS:  # an exact zero never separates
            if is_proven_zero(x):
                return 0
            tried_proof = True
    if not tried_proof and is_proven_zero(x):
        return 0
    raise Undecidable(
        f"cannot decide whether {short(x)} is exactly 0: no enclosure up to {MAX_BITS} bits separates it "
        "from 0 and no proof settles it; rewrite it without the cancelling terms"
    )


def floor(x: sympy.Expr) -> sympy.Integer:
    """The exact floor: from an enclosure inside ``[n, n+1)``, else from the sign of ``x - n``.

    Example:
        >>> floor(sympy.sqrt(2) * 10**40) == 14142135623730950488016887242096980785696
        True
    """
    if x.is_Rational:
        return sympy.Integer(x.p // x.q)
    for _, lo, hi in _tightening(x):
        low, high = libmp.to_int(lo, libmp.round_floor), libmp.to_int(hi, libmp.round_floor)
        if low == high:
            return sympy.Integer(low)
    n = sympy.Integer(high)  # lo < n <= hi: the floor is n or n - 1
    return n if sign(x - n) >= 0 else n - 1


def compare(a: sympy.Expr, b: sympy.Expr) -> int:
    """-1, 0 or 1 as ``a`` is less than, equal to or greater than ``b``, exactly (see :func:`sign`)."""
    if a.is_Rational and b.is_Rational:
        return int(bool(a > b)) - int(bool(a < b))
    return sign(a - b)


def approximate(x: sympy.Expr, digits: int) -> mpmath.mpf:
    """A value within ``10**-(digits + 3)`` of ``x`` relative to it (or 0 when ``x`` is proven 0).

    Raises:
        Undecidable: when no enclosure is that tight (the value is not proven 0 but agrees with it).
    """
    if sign(x) == 0:
        return mpmath.mpf(0)
    target = -(digits + 3) * math.log2(10)
    for _, lo, hi in _tightening(x):
        width, size = libmp.mpf_sub(hi, lo, 64), libmp.mpf_abs(lo)
        if libmp.mpf_sign(width) == 0 or _log2(width) - _log2(size) < target:
            return mpmath.mpf(libmp.mpf_shift(libmp.mpf_add(lo, hi, 4 * MAX_BITS), -1))
    raise Undecidable(f"cannot compute {digits} digits of {short(x)}")


def log10_abs(x: sympy.Expr) -> float:
    """log10 of ``|x|``, to about 15 digits (-inf for 0; x must be real)."""
    if x.is_Rational:
        return math.log10(abs(x.p)) - math.log10(x.q) if x.p else -math.inf
    for _, lo, hi in _tightening(x):
        if libmp.mpf_sign(lo) == libmp.mpf_sign(hi) != 0:
            return min(_log2(lo), _log2(hi)) / math.log2(10)
    raise Undecidable(f"cannot bound the size of {short(x)}")


def is_proven_zero(x: sympy.Expr) -> bool:
    """True when sympy proves the exact value (inside every :class:`Opaque`) is 0."""
    exact = x
    while exact.has(Opaque):
        exact = exact.xreplace({o: o.inner for o in exact.atoms(Opaque)})
    try:
        return bool(exact == 0 or exact.equals(0) is True)
    except (TypeError, AttributeError, ValueError, RecursionError, ZeroDivisionError):
        return False  # sympy failed on the way to a proof: no proof


# --- enclosures -----------------------------------------------------------------------------------


def _tightening(x: sympy.Expr) -> Iterator[tuple[int, tuple, tuple]]:
    """``(bits, lo, hi)`` with ever more bits: first a cheap enclosure, then enough bits to hold the
    value's integer part, doubling up to MAX_BITS (cancelling terms may be far larger than the value)."""
    bits = FIRST_BITS + _atom_bits(x)  # sin(10**2999) needs every bit of its argument
    lo, hi = enclose(x, bits)
    yield bits, lo, hi
    bits = max(4 * bits, FIRST_BITS + int(max(_log2(lo), _log2(hi), 0)))
    while True:
        bits = min(bits, MAX_BITS)
        yield bits, *enclose(x, bits)
        if bits == MAX_BITS:
            return
        bits *= 2


def _atom_bits(x: sympy.Expr) -> int:
    """Bits of the largest numerator or denominator in ``x``, inside opaque values too."""
    if x.is_Rational:
        return max(abs(x.p).bit_length(), x.q.bit_length())
    if isinstance(x, Opaque):
        return _atom_bits(x.inner)
    return max((_atom_bits(a) for a in x.args), default=0)


def _quick_sign(x: sympy.Expr, *, positive: bool) -> bool | None:
    """sympy's assumption hooks: a cheap answer or None (unknown), never a proof attempt."""
    try:
        lo, hi = enclose(x, FIRST_BITS)
    except Undecidable:
        return None
    if libmp.mpf_sign(lo) > 0:
        return positive
    if libmp.mpf_sign(hi) < 0:
        return not positive
    return None


def _context() -> MPIntervalContext:
    if not hasattr(_CONTEXTS, "ctx"):
        _CONTEXTS.ctx = MPIntervalContext()
    return _CONTEXTS.ctx


def _interval(x: sympy.Expr, ctx: MPIntervalContext):
    if x.is_Rational:
        return ctx.mpf(x.p) / x.q if x.q != 1 else ctx.mpf(x.p)
    if isinstance(x, Opaque):
        return _interval(x.inner, ctx)
    if x.is_Float:  # an approximation of unknown origin: trust all but its last 4 bits
        slack = libmp.mpf_shift(libmp.mpf_abs(x._mpf_), 4 - x._prec)
        return ctx.make_mpf((libmp.mpf_sub(x._mpf_, slack), libmp.mpf_add(x._mpf_, slack)))
    if x is sympy.pi:
        return ctx.pi
    if x is sympy.E:
        return ctx.e
    args = [_interval(a, ctx) for a in x.args]
    if x.is_Add:
        return ctx.fsum(args)
    if x.is_Mul:
        return ctx.fprod(args)
    if x.is_Pow:
        return _power(args[0], x.args[1], args[1], ctx)
    function = _FUNCTIONS.get(type(x))
    if function is None or len(args) != 1:
        raise _NotEnclosable(f"no enclosure for {type(x).__name__}")
    return function(ctx, args[0])


def _power(base, exponent: sympy.Expr, exponent_interval, ctx):
    if exponent.is_Integer:
        if exponent < 0 and _contains_zero(base):
            raise _NotEnclosable("a negative power of an interval holding 0")
        if abs(exponent) < 1 << 20 or _contains_zero(base):
            return base ** int(exponent)
        sign = -1 if libmp.mpf_sign(base._mpi_[0]) < 0 and exponent.p % 2 else 1  # (1 + 10**-50)**(10**50)
        return sign * ctx.exp(ctx.log(abs(base)) * exponent_interval)
    if libmp.mpf_sign(base._mpi_[0]) <= 0:
        raise _NotEnclosable("a fractional power of a value not known to be positive")
    if exponent.is_Rational and exponent.q <= 1000:
        q = int(exponent.q)
        root = ctx.sqrt(base) if q == 2 else _monotone(lambda end, prec: libmp.mpf_nthroot(end, q, prec))(ctx, base)
        return root ** int(exponent.p)
    return ctx.exp(ctx.log(base) * exponent_interval)


def _positive(function):
    def wrapped(ctx, x):
        if libmp.mpf_sign(x._mpi_[0]) <= 0:
            raise _NotEnclosable("the logarithm of a value not known to be positive")
        return function(ctx, x)
    return wrapped


def _monotone(raw_function, increasing: bool = True):
    """An increasing (or decreasing) function on intervals, from its values at the endpoints, widened."""
    def wrapped(ctx, x):
        prec = ctx.prec + 20
        values = [raw_function(end, prec) for end in x._mpi_]
        lo, hi = values if increasing else values[::-1]
        slack = lambda v: libmp.mpf_add(libmp.mpf_shift(libmp.mpf_abs(v), -ctx.prec), libmp.from_man_exp(1, -4 * ctx.prec), prec)
        return ctx.make_mpf((libmp.mpf_sub(lo, slack(lo), prec, libmp.round_floor),
                             libmp.mpf_add(hi, slack(hi), prec, libmp.round_ceiling)))
    return wrapped


def _unit_domain(raw_function):
    def checked(end, prec):
        if libmp.mpf_gt(libmp.mpf_abs(end), libmp.fone):
            raise _NotEnclosable("an inverse sine or cosine of a value beyond [-1, 1]")
        return raw_function(end, prec)
    return checked


def _contains_zero(interval) -> bool:
    lo, hi = interval._mpi_
    return libmp.mpf_sign(lo) <= 0 <= libmp.mpf_sign(hi)


def _log2(raw: tuple) -> float:
    """log2 |raw| (an mpmath raw float), -inf for 0."""
    if libmp.mpf_sign(raw) == 0:
        return -math.inf
    _, mantissa, exponent, _ = raw
    return exponent + math.log2(mantissa)


def _finite(raw: tuple) -> bool:
    return raw not in (libmp.finf, libmp.fninf, libmp.fnan)


def short(x: sympy.Expr, limit: int = 40) -> str:
    """sympy's text for ``x`` cut to ``limit`` characters, for error messages."""
    text = sympy_text(x) or f"a {type(x).__name__} value"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sympy_text(x: sympy.Expr) -> str | None:
    """sympy's text for a value, or None: ordering an Add's terms evaluates them, which can divide by 0."""
    try:
        return sympy.sstr(x)
    except (ArithmeticError, ValueError, TypeError, RecursionError):
        return None


_FUNCTIONS = {
    sympy.exp: lambda ctx, x: ctx.exp(x),
    sympy.log: _positive(lambda ctx, x: ctx.log(x)),
    sympy.sin: lambda ctx, x: ctx.sin(x),
    sympy.cos: lambda ctx, x: ctx.cos(x),
    sympy.tan: lambda ctx, x: ctx.tan(x),
    sympy.atan: _monotone(libmp.mpf_atan),
    sympy.asin: _monotone(_unit_domain(libmp.mpf_asin)),
    sympy.acos: _monotone(_unit_domain(libmp.mpf_acos), increasing=False),
}

"""Fuzzing the calculator: random, exotic and noisy expressions, checked against an independent reference.

A value is wrong when it disagrees with :func:`reference_value` (Python fractions where exact,
mpmath at two precisions otherwise) beyond the digits shown, or with a value known by construction
(:func:`known_value_expression`: expressions built around exact zeros written irrationally).
"""

from __future__ import annotations

import ast
import math
import random
import time
from collections.abc import Callable
from fractions import Fraction

import mpmath

from swirl_env.fuzz.core import Outcome
from swirl_env.tools.base import ToolError

ZERO_IDENTITIES = (
    "((sqrt(2)+sqrt(3))**2-5-2*sqrt(6))",
    "(sin(1)**2+cos(1)**2-1)",
    "(cbrt(2)**3-2)",
    "(1/(sqrt(2)-1)-sqrt(2)-1)",
    "(sqrt(2+sqrt(3))-(sqrt(6)+sqrt(2))/2)",
    "(log(8)/log(2)-3)",
    "(exp(1)*exp(-1)-1)",
    "(tan(pi/8)-sqrt(2)+1)",
)
"""Expressions whose exact value is 0 and which sympy does not simplify to 0 on sight."""

_ATOMS = ("0", "1", "-1", "2", "7", "0.5", "1/3", "10", "100", "1e300", "1e-300", "10**2999", "999/1000",
          "factorial(1000)", "3**2000", "pi", "e", "sqrt(2)", "exp(1000)", "(10**100+7)", "(1+10**-40)",
          "exp(pi*sqrt(163))", "(sqrt(2)+1)**20", "5**300", "1,000", "20%", "2π")
_UNARY = ("sqrt", "cbrt", "exp", "ln", "log10", "log2", "sin", "cos", "tan", "asin", "acos", "atan", "abs",
          "floor", "ceil", "round", "factorial")
_BINARY_FUNCTIONS = ("log", "round", "min", "max", "comb", "gcd", "lcm")
_OPERATORS = ("+", "-", "*", "/", "//", "%", "**", "^")
_NOISE = ("", " ", "(", ")", ",", "**", "1" * 40, "9e9999", "__", "lambda", "'", "\x00", "√", "²", "×", "÷",
          "−", "%", "=", "$", "x", "import", "[", "{", "\u202e", "١٢٣", "₁", "e+", ".", "..", "0x1f", "1_000")


def random_expression(rng: random.Random, depth: int = 4) -> str:
    """A random arithmetic expression over big, tiny, irrational and exactly-zero atoms."""
    r = rng.random()
    if depth <= 0 or r < 0.25:
        return rng.choice(_ATOMS + ZERO_IDENTITIES)
    if r < 0.55:
        return f"({random_expression(rng, depth - 1)}){rng.choice(_OPERATORS)}({random_expression(rng, depth - 1)})"
    if r < 0.85:
        return f"{rng.choice(_UNARY)}({random_expression(rng, depth - 1)})"
    args = ", ".join(random_expression(rng, depth - 1) for _ in range(2))
    return f"{rng.choice(_BINARY_FUNCTIONS)}({args})"


def known_value_expression(rng: random.Random) -> tuple[str, Fraction]:
    """An expression built around an exact zero, with its exact rational value (never approximate)."""
    zero, q = rng.choice(ZERO_IDENTITIES), Fraction(rng.randint(-50, 50), rng.randint(1, 12))
    k = rng.choice((1, 10**20, 10**60))
    forms = [
        (f"floor({zero}*{k} + {q})", Fraction(math.floor(q))),
        (f"ceil({q} - {zero})", Fraction(math.ceil(q))),
        (f"round({zero} + {q.numerator}/{q.denominator}, 2)", _round_half_away(q, 2)),
        (f"({q} + {zero}) // 1", Fraction(math.floor(q))),
        (f"abs({zero}) + {q}", q),
        (f"max({q}, {q} + {zero}) - {zero}", q),
        (f"({q} + {zero}*{k}) % 7", q % 7),
        (f"0**abs({zero}) + {q}", q + 1),
    ]
    return rng.choice(forms)


def hostile_expression(rng: random.Random) -> str:
    """A random expression, a known-value one, or noise spliced into one: anything a model might write."""
    if rng.random() < 0.6:
        return random_expression(rng, rng.randint(1, 5))
    pieces = [random_expression(rng, 2) if rng.random() < 0.5 else rng.choice(_NOISE) for _ in range(rng.randint(1, 6))]
    return "".join(pieces) if rng.random() < 0.8 else "(" * rng.randint(1, 60) + "1" + ")" * rng.randint(0, 60)


def target(time_limit: float | None = None) -> tuple[Callable, Callable]:
    """(generator, checker) for the calculator; the checker compares with :func:`reference_value`."""
    from swirl_env.tools.calculator import TIME_LIMIT, Calculator

    calc = Calculator(time_limit=time_limit or TIME_LIMIT)
    bound = calc.bounds[0] + 1.0  # the kill, then one second for the process to go
    calc("sqrt(2)")  # start a worker now, so no input's time includes the start

    known: dict[str, Fraction] = {}

    def generate(rng: random.Random) -> str:
        if rng.random() < 0.2:
            text, value = known_value_expression(rng)
            known[text] = value
            return text
        return hostile_expression(rng)

    def check(text: str) -> Outcome:
        return check_calculator(calc, text, bound, known.get(text))

    return generate, check


def check_calculator(calc: Callable[[str], str], text: str, bound: float, expected: Fraction | None = None) -> Outcome:
    """Run the calculator once: a value (checked against the reference), an error kind, or a failure."""
    start = time.monotonic()
    try:
        shown = calc(text)
    except ToolError as error:
        kind = error_kind(str(error))
        late = time.monotonic() - start > bound
        return Outcome("hang" if late else "crash" if kind == "internal" else kind, str(error))
    except Exception as error:  # noqa: BLE001 - the point is to catch what should never escape
        return Outcome("crash", f"{type(error).__name__}: {error}")
    if time.monotonic() - start > bound:
        return Outcome("hang", f"{time.monotonic() - start:.1f} s for a value")
    problem = wrong_value(text, shown, expected)
    return Outcome("wrong", problem) if problem else Outcome("value")


_ERROR_KINDS = (
    ("division by zero", "division_by_zero"), ("modulo by zero", "division_by_zero"), ("undefined", "undefined"),
    ("not a real number", "not_real"), ("out of range", "too_large"), ("too large", "too_large"),
    ("too long", "too_long"), ("too deeply nested", "too_complex"), ("too complex", "too_complex"),
    ("could not parse", "syntax"), ("unsupported", "syntax"), ("only calls", "syntax"), ("only decimal", "syntax"),
    ("unknown", "unknown_name"), ("is a function", "unknown_name"), ("expects", "bad_argument"),
    ("takes plain", "bad_argument"), ("expected the expression as text", "not_text"),
    ("cannot decide", "undecidable"), ("cannot bound", "undecidable"), ("cannot compute", "undecidable"),
    ("stopped after", "timeout"), ("of memory", "memory"),
    ("could not evaluate", "internal"), ("internal error", "internal"), ("worker died", "internal"),
)


def error_kind(message: str) -> str:
    """A short name for a calculator error message (``division_by_zero``, ``timeout``, ``internal``...).

    Example:
        >>> error_kind("division by zero"), error_kind("calculation stopped after 2 s (the time limit): ...")
        ('division_by_zero', 'timeout')
    """
    return next((kind for needle, kind in _ERROR_KINDS if needle in message), "other")


def wrong_value(text: str, shown: str, expected: Fraction | None = None) -> str:
    """Why ``shown`` is not the value of ``text`` (empty when it is, or when no reference can tell)."""
    if expected is None:
        try:
            expected = reference_value(text)
        except _Undefined as why:
            return f"a value {shown!r} where there is none ({why})"
        except _Unknown:
            return ""
        if not isinstance(expected, Fraction) and expected == 0:
            return ""  # 0 in floating point: a value below the reference's precision, or 0
    exact, approximate, approx = (part.strip() for part in shown.partition("≈"))
    try:
        if not approximate:
            value = Fraction(exact)
            bad = value != expected if isinstance(expected, Fraction) else _far(value, expected, 1e-40)
        else:
            bad = _far(mpmath.mpf(approx), expected, 1e-9)
            if exact and all(c.isdigit() or c in "-/" for c in exact):  # an exact rational form p/q
                bad = bad or _far(Fraction(exact), expected, 1e-40)
    except (ValueError, ZeroDivisionError):
        return f"unreadable result {shown!r}"
    return f"shows {shown!r}, the value is {_show(expected)}" if bad else ""


def _far(shown, expected, tolerance: float) -> bool:
    with mpmath.workdps(60):
        shown, expected = mpmath.mpf(_as_mpf(shown)), mpmath.mpf(_as_mpf(expected))
        return abs(shown - expected) > tolerance * abs(expected) if expected != 0 else shown != 0


def _as_mpf(x):
    return mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else x


def _show(x) -> str:
    return str(x) if isinstance(x, Fraction) and x.denominator < 10**12 else mpmath.nstr(_as_mpf(x), 15)


# --- the reference: an independent evaluator --------------------------------------------------------


class _Undefined(Exception):
    """The expression has no real value: the calculator must refuse it."""


class _Unknown(Exception):
    """The reference cannot tell (a floor at a near-integer, a value beyond its precision, a size limit)."""


def reference_value(text: str) -> Fraction | mpmath.mpf:
    """The value of a calculator expression by a second evaluator: Python fractions where exact, mpmath
    at 60 and again at 120 digits otherwise (disagreement, or a floor within 10**-40 of an integer, is
    "unknown"). It shares only the calculator's parser, and reads each of :data:`ZERO_IDENTITIES` as 0.

    Raises:
        _Undefined: no real value (division by zero, a root of a negative, a domain error).
        _Unknown: the reference cannot decide; the input is skipped.
    """
    from swirl_env.tools.calculator import parse

    for zero in ZERO_IDENTITIES:  # exactly 0, which floating point cannot know
        text = text.replace(zero, "(0)")
    try:
        tree = parse(text)
    except ToolError as error:
        raise _Unknown("the calculator's parser refuses it") from error
    outcomes = [_reference_at(tree, digits) for digits in (60, 120)]
    if all(isinstance(o, _Undefined) for o in outcomes):
        raise outcomes[1]
    if any(isinstance(o, Exception) for o in outcomes):
        raise _Unknown("the reference cannot decide at every precision")
    low, high = outcomes
    if isinstance(low, Fraction) and isinstance(high, Fraction):
        return high
    if _far(low, high, 1e-30):
        raise _Unknown("the reference disagrees with itself: cancellation beyond 60 digits")
    return high


def _reference_at(tree: ast.expr, digits: int):
    with mpmath.workdps(digits):
        try:
            return _Reference(tree.source).value(tree)
        except (_Undefined, _Unknown) as why:
            return why
        except (OverflowError, ZeroDivisionError, KeyError) as error:
            return _Unknown(f"the reference failed ({type(error).__name__})")


class _Reference:
    LIMIT = 10**400  # beyond this the reference does not try (the calculator allows 10**3000)

    def __init__(self, source: str):
        self.source = source

    def value(self, node: ast.expr):
        if isinstance(node, ast.Constant):
            literal = ast.get_source_segment(self.source, node) or ""
            if "e" in literal.lower() and abs(int(literal.lower().split("e")[1] or 0)) > 400:
                raise _Unknown("a literal beyond the reference's range")
            return self._sized(Fraction(literal.replace("_", "")))
        if isinstance(node, ast.Name):
            return {"pi": mpmath.pi, "e": mpmath.e}[node.id.lower()] * 1
        if isinstance(node, ast.UnaryOp):
            x = self.value(node.operand)
            return -x if isinstance(node.op, ast.USub) else x
        if isinstance(node, ast.BinOp):
            if isinstance(node.right, ast.Name) and node.right.id == "percent_":
                return self.value(node.left) / 100
            return self.binary(type(node.op).__name__, self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Call):
            return self.call(node.func.id.lower(), [self.value(a) for a in node.args])
        raise _Unknown(type(node).__name__)

    def _sized(self, x):
        if isinstance(x, Fraction) and max(abs(x.numerator), x.denominator) > self.LIMIT:
            raise _Unknown("a rational beyond the reference's range")
        if not isinstance(x, Fraction) and (abs(x) > self.LIMIT or (x != 0 and abs(x) < 1 / mpmath.mpf(self.LIMIT))):
            raise _Unknown("a value beyond the reference's range")
        return x

    def binary(self, op: str, a, b):
        if op in ("Div", "FloorDiv", "Mod"):
            _check_domain(b != 0, abs(b), "division by zero")
        if op in ("Add", "Sub", "Mult", "Div"):
            if not (isinstance(a, Fraction) and isinstance(b, Fraction)):
                a, b = _as_mpf(a), _as_mpf(b)
            return self._sized({"Add": a + b, "Sub": a - b, "Mult": a * b}[op] if op != "Div" else a / b)
        if op == "FloorDiv":
            return self.floor(_divide(a, b))
        if op == "Mod":
            return self.binary("Sub", a, self.binary("Mult", b, self.floor(_divide(a, b))))
        return self.power(a, b)

    def power(self, a, b):
        if not isinstance(b, Fraction) and abs(b) < _TINY:
            raise _Unknown("a power by a value that may be 0")
        if not isinstance(a, Fraction) and abs(a) < _TINY:  # 0.0 too: floating point may have lost it
            raise _Unknown("a power of a value that may be 0")
        if a == 0:
            if b < 0:
                raise _Undefined("0 to a negative power")
            return Fraction(1 if b == 0 else 0)
        if isinstance(b, Fraction) and b.denominator == 1:
            if abs(b) * _digits(a) > 3000:
                raise _Unknown("a power beyond the reference's range")
            return self._sized(a**b.numerator if isinstance(a, Fraction) else a ** int(b))
        if a < 0:
            if not isinstance(b, Fraction) and abs(b - mpmath.nint(b)) < _TINY:
                raise _Unknown("a negative number to a power that may be whole")
            if not (isinstance(b, Fraction) and b.denominator % 2 == 1):
                raise _Undefined("a fractional power of a negative number")
            root = self.power(-a, b)
            return -root if b.numerator % 2 else root
        return self._sized(mpmath.power(_as_mpf(a), _as_mpf(b)))

    def floor(self, x):
        if isinstance(x, Fraction):
            return Fraction(math.floor(x))
        nearest = mpmath.nint(x)
        if abs(x - nearest) < mpmath.mpf(10) ** -40 * max(1, abs(x)):
            raise _Unknown("a floor at a near-integer")
        return Fraction(int(mpmath.floor(x)))

    def call(self, name: str, args: list):
        x = args[0] if args else None
        if name in ("sqrt", "cbrt"):
            return self.power(x, Fraction(1, 2 if name == "sqrt" else 3))
        if name in ("floor", "ceil", "ceiling"):
            return self.floor(x) if name == "floor" else -self.floor(-x)
        if name == "abs":
            return abs(x)
        from swirl_env.tools.calculator import FUNCTIONS

        fewest, most, _ = FUNCTIONS[name]
        if not fewest <= len(args) <= most:
            raise _Undefined(f"{name} with {len(args)} arguments")
        if name == "round":
            return self.round(*args)
        if name in ("min", "max"):
            return (min if name == "min" else max)(args, key=_as_mpf)
        if name in ("factorial", "comb", "gcd", "lcm"):
            return _integer_function(name, args)
        return self._sized(_transcendental(name, [_as_mpf(a) for a in args]))

    def round(self, x, ndigits=Fraction(0)):
        ndigits = _whole(ndigits, "round(x, n)")
        if abs(ndigits) > 100:
            raise _Undefined("round(x, n) with n beyond 100")
        scale = Fraction(10) ** int(ndigits)
        magnitude = self.floor(self.binary("Add", self.binary("Mult", abs(x), scale), Fraction(1, 2))) / scale
        return -magnitude if x < 0 else magnitude


def _digits(x) -> float:
    if isinstance(x, Fraction):
        return max(math.log10(abs(x.numerator)) if x.numerator else 0, math.log10(x.denominator))
    return abs(float(mpmath.log10(abs(x)))) if x != 0 else 0


def _divide(a, b):
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a / b
    return _as_mpf(a) / _as_mpf(b)


def _whole(x, what: str) -> int:
    """An integer argument; an irrational one near an integer may be that integer written irrationally."""
    if isinstance(x, Fraction):
        if x.denominator != 1:
            raise _Undefined(f"{what} of a number that is not whole")
        return int(x)
    if abs(x - mpmath.nint(x)) < mpmath.mpf(10) ** -40:
        raise _Unknown(f"{what} of an irrational number that may be whole")
    raise _Undefined(f"{what} of a number that is not whole")


def _integer_function(name: str, args: list) -> Fraction:
    ints = [_whole(a, name) for a in args]
    if name == "factorial":
        if not 0 <= ints[0] <= 1000:
            raise _Undefined("factorial out of its range")
        return Fraction(math.factorial(ints[0]))
    if name == "comb":
        n, k = ints
        if not 0 <= k <= n <= 10**6:
            raise _Undefined("comb out of its range")
        if math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) > 900:
            raise _Unknown("comb beyond the reference's range")
        return Fraction(math.comb(n, k))
    return Fraction((math.gcd if name == "gcd" else math.lcm)(*ints))


def _transcendental(name: str, args: list):
    x = args[0]
    if name in ("ln", "log", "log10", "log2"):
        base = {"log10": 10, "log2": 2}.get(name, args[1] if len(args) > 1 else None)
        _check_domain(x > 0, x, "a logarithm of a number that is not positive")
        if base is not None:
            _check_domain(base > 0, base, "a logarithm to a base that is not positive")
            _check_domain(base != 1, abs(base - 1), "a logarithm to base 1")
        return mpmath.log(x) if base is None else mpmath.log(x) / mpmath.log(base)
    if name in ("asin", "acos"):
        _check_domain(abs(x) <= 1, abs(abs(x) - 1), f"{name} outside [-1, 1]")
    if name == "exp" and x > 6900:
        raise _Unknown("exp beyond the calculator's range")
    if name == "tan" and abs(mpmath.cos(x)) < mpmath.mpf(10) ** -40:
        raise _Unknown("tan at a pole")
    if name in ("sin", "cos", "tan") and abs(x) > 10**30:
        raise _Unknown("a trigonometric function of a huge argument")
    return getattr(mpmath, name)(x)


_TINY = mpmath.mpf(10) ** -40


def _check_domain(inside: bool, distance, why: str) -> None:
    """Undefined outside the domain; unknown when an irrational value lies within 10**-40 of its edge."""
    if not isinstance(distance, Fraction) and abs(distance) < _TINY:
        raise _Unknown(f"at the edge: {why}")
    if not inside:
        raise _Undefined(why)


def _round_half_away(q: Fraction, ndigits: int) -> Fraction:
    scale = Fraction(10) ** ndigits
    magnitude = Fraction(math.floor(abs(q) * scale + Fraction(1, 2))) / scale
    return -magnitude if q < 0 else magnitude

"""A safe calculator tool: arithmetic text in, an exact (or plainly approximate) number out.

Model text never reaches ``eval``, ``sympify`` or ``parse_expr``. It is normalised (unicode
operators, thousands separators, postfix percent), parsed by :func:`ast.parse` in ``"eval"`` mode,
checked against a whitelist of node types, and its sympy value is built node by node. Every step
that could grow without bound is checked before it runs.

Bounds that do not depend on sympy's goodwill: an expression that is provably cheap (rational
arithmetic whose digits are bounded before it runs, see :func:`is_cheap`) is evaluated in the
calling process, in tens of microseconds; anything else runs in a worker process
(:mod:`swirl_env.tools.sandbox`) that is killed after :data:`TIME_LIMIT` seconds or when it needs
more than :data:`MEMORY_LIMIT` bytes, and the call returns a :class:`ToolError` saying so.

Never a wrong number: signs, floors, comparisons and digits shown come from certified enclosures
(:mod:`swirl_env.tools.reals`); an exact tie is proven or the step is refused.

Input:
    numbers ``12``, ``.5``, ``1e3``, ``1,000`` (commas between digit triples are thousands
    separators, except inside a function of several arguments, where they separate arguments);
    ``+ - * / // % **``; ``^`` is power; ``×`` ``·`` and ``x`` between numbers multiply; ``÷``
    divides; ``−`` ``–`` subtract; ``²`` ``³`` ``√``; ``$ € £`` and a trailing ``=`` are ignored.
    ``%`` followed by nothing, ``)``, ``,`` or an operator is a postfix percent of its operand
    (``20% * 50`` is 10, ``10 / 20%`` is 50, ``50 + 20%`` is 50.2, ``20% - 5`` is -4.8); followed
    by an operand it is modulo (``7 % 3`` is 1, ``7 % (-3)`` is -2). Names (any case): ``pi``, ``e`` and :data:`FUNCTIONS`; trigonometry in
    radians; ``log(x)`` natural, ``log(x, b)`` base b; ``round`` rounds half away from zero.

Output (:func:`format_number`): integers as integers (``24``), terminating decimals exactly
(``7.5``), other rationals as ``10/3 ≈ 3.333333333``, irrationals as ``sqrt(2) ≈ 1.414213562``
(10 significant digits, trailing zeros stripped, scientific notation beyond 1e16).

Example:
    >>> calc = Calculator()
    >>> calc("floor((sqrt(2)+sqrt(3))**2 - 5 - 2*sqrt(6))")  # exactly 0: sympy alone says -1
    '0'
    >>> calc("(pi/50)**(1/5**300)")  # sympy alone runs for ever here and takes gigabytes
    '≈ 1'
"""

from __future__ import annotations

import ast
import math
import re
import threading
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

import sympy
from mpmath import libmp

from swirl_env.tools import reals
from swirl_env.tools.base import ToolError
from swirl_env.tools.sandbox import WorkerPool

MAX_CHARS = 500  # longest expression accepted
MAX_NESTING = 40  # deepest parenthesis nesting
MAX_NODES = 300  # most syntax-tree nodes
MAX_DEPTH = 100  # deepest syntax tree: a chain 1+1+...+1 of 100 terms is 100 deep
MAX_DIGITS = 3000  # most decimal digits in any value, intermediate or final (1000! has 2568)
MAX_FACTORIAL = 1000
# sympy's exact algebra on big integers can take seconds (a cube root factorises, a primality test
# hides behind `.is_negative`): irrational values involving a rational of more than EXACT_DIGITS
# digits, or a sympy tree of more than MAX_SYMBOLIC_NODES nodes, become opaque atoms (still exact).
EXACT_DIGITS = 50
MAX_SYMBOLIC_NODES = 40
SHOWN_DIGITS = 10  # significant digits shown for a value that is not a short exact decimal
CHEAP_DIGITS = 1000  # in-process evaluation when the value provably has at most this many digits
TIME_LIMIT = 2.0  # seconds of wall-clock time for one expression evaluated in a worker
MEMORY_LIMIT = 1 << 30  # bytes of address space of a worker process (an idle one uses ~60 MB)
WORKERS = 4  # most worker processes at once (threads beyond that wait for a free one)

_EXACT_LIMIT = 10**EXACT_DIGITS
_UNICODE = {"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "∕": "/", "−": "-", "–": "-",
            "^": "**", "²": "**2", "³": "**3", "π": "pi", "$": "", "€": "", "£": ""}
_PERCENT_MARK = "percent_"
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(.])")
_POSTFIX_PERCENT = re.compile(r"%(?=\s*(?:$|[)+\-*/%,]))")
_CALL_PAREN_OR_GROUPED_NUMBER = re.compile(r"([A-Za-z_]\w*)\s*\(|\(|\)|(?<![\w.])\d{1,3}(?:,\d{3})+(?!\w)")
_DECIMAL_LITERAL = re.compile(r"(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][+-]?(\d+))?")
_ROOT = re.compile(r"√\s*(\d*\.?\d+|(?=\())")
_ALLOWED_NODES = (ast.Constant, ast.Name, ast.UnaryOp, ast.BinOp, ast.Call)
_SYNTAX_HINT = "use only numbers, + - * / // % ** ( ) and functions"


class Calculator:
    """The calculator tool: ``<math_exp>48/2 + 1</math_exp>`` -> ``25``.

    Deterministic; every error is a :class:`ToolError` whose message the environment shows to the
    model. Safe to call from many threads; worker processes are shared by every calculator with
    the same bounds, started on first need, and stopped at exit.

    Args:
        time_limit: seconds an expression may run in a worker before it is killed.
        memory_limit: bytes of address space a worker may use.
        workers: most worker processes at once.

    Example:
        >>> calc = Calculator()
        >>> calc("1/3 + 1/6"), calc("1,000 × 3"), calc("20% * 50"), calc("10/3")
        ('0.5', '3000', '10', '10/3 ≈ 3.333333333')
        >>> calc("sqrt(8)")  # not provably cheap: answered by a worker process
        '2*sqrt(2) ≈ 2.828427125'
    """

    name = "calculator"
    tag = "math_exp"

    def __init__(self, *, time_limit: float = TIME_LIMIT, memory_limit: int | None = MEMORY_LIMIT, workers: int = WORKERS):
        self.bounds = (float(time_limit), memory_limit, int(workers))

    def __call__(self, text: str) -> str:
        tree = parse(text)
        if is_cheap(tree):
            return format_number(_evaluate_tree(tree, text))
        return worker_pool(*self.bounds).call(text)

    def __repr__(self) -> str:
        defaults = (TIME_LIMIT, MEMORY_LIMIT, WORKERS)
        if self.bounds == defaults:
            return "Calculator()"
        return "Calculator(time_limit={}, memory_limit={}, workers={})".format(*self.bounds)


_POOLS: dict[tuple, WorkerPool] = {}
_WARMUP = ("floor(sqrt(2+sqrt(3))-(sqrt(6)+sqrt(2))/2) + sin(1) + log(3, 2) + acos(1/3) + max(pi, e)", "sqrt(8)")
"""What a new worker evaluates first: sympy imports parts of itself on first use (0.3 s)."""
_POOLS_LOCK = threading.Lock()


def worker_pool(time_limit: float = TIME_LIMIT, memory_limit: int | None = MEMORY_LIMIT, workers: int = WORKERS) -> WorkerPool:
    """The shared pool of calculator workers with these bounds (its ``stats`` count restarts)."""
    key = (time_limit, memory_limit, workers)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = WorkerPool(
                "swirl_env.tools.calculator:calculate", time_limit=time_limit, memory_limit=memory_limit, size=workers,
                warmup=_WARMUP,
            )
        return _POOLS[key]


def calculate(text: str) -> str:
    """The tool's answer computed in this process, without a time or memory bound (the worker's target).

    Example:
        >>> calculate("2**0.5")
        'sqrt(2) ≈ 1.414213562'
    """
    return format_number(evaluate(text))


def evaluate(expression: str) -> sympy.Expr:
    """Evaluate an arithmetic expression, exactly where possible; never executes the text.

    Runs in the calling process with no time or memory bound: model text goes through
    :class:`Calculator`, which bounds both.

    Raises:
        ToolError: for anything but a bounded arithmetic expression over the whitelist.
        MemoryError: the process ran out of memory (a worker reports it and restarts).

    Example:
        >>> evaluate("1/3 + 1/6"), evaluate("sqrt(8)"), evaluate("0.1 + 0.2")
        (1/2, 2*sqrt(2), 3/10)
    """
    return _evaluate_tree(parse(expression), expression)


def parse(expression: str) -> ast.expr:
    """Normalise and parse an expression into a checked syntax tree (cheap: bounded by :data:`MAX_CHARS`).

    Raises:
        ToolError: not text, too long, too deep, not an arithmetic expression over the whitelist.
    """
    if not isinstance(expression, str):
        raise ToolError(f"expected the expression as text, actual {type(expression).__name__}")
    if len(expression) > MAX_CHARS:  # before normalising, which costs time on long input
        raise ToolError(f"expression too long: expected at most {MAX_CHARS} characters, actual {len(expression)}")
    text = normalize_expression(expression)
    tree = _parse_checked(text)
    tree.source = text  # ast.get_source_segment needs the text the tree was parsed from
    return tree


def _evaluate_tree(tree: ast.expr, expression: str) -> sympy.Expr:
    try:
        return _checked(_build(tree, tree.source))
    except (ToolError, MemoryError):
        raise
    except Exception as error:  # sympy internals on edge values: the model needs a message, not a crash
        raise ToolError(f"could not evaluate {expression[:60]!r} ({type(error).__name__})") from None


def is_cheap(tree: ast.expr) -> bool:
    """True when the value is rational with at most :data:`CHEAP_DIGITS` digits, known before evaluating.

    That holds for numbers, ``+ - * / // %``, percent, powers by an integer literal, and ``abs``,
    ``floor``, ``ceil``, ``round``, ``min``, ``max``, ``gcd``, ``lcm`` of such: exact rational
    arithmetic whose digits are bounded by those of its literals. Everything else (``pi``, roots,
    logarithms, ``factorial``...) is not provably cheap and runs in a worker.

    Example:
        >>> is_cheap(parse("48/2 + 3*(4-1)")), is_cheap(parse("2**10000")), is_cheap(parse("sqrt(2)"))
        (True, False, False)
    """
    digits = _rational_digits(tree, tree.source)
    return digits is not None and digits <= CHEAP_DIGITS


def normalize_expression(text: str) -> str:
    """Rewrite the notations models write (``×``, ``^``, ``1,000``, ``20%``) into Python syntax.

    Example:
        >>> normalize_expression("1,000 × 3^2 − 20%")
        '1000 * 3**2 - 20**percent_'
    """
    text = re.sub(r"(?<=[\d)])\s*π", "*π", text)  # 2π
    for symbol, replacement in _UNICODE.items():
        text = text.replace(symbol, replacement)
    text = _ROOT.sub(lambda m: f"sqrt({m.group(1)})" if m.group(1) else "sqrt", text)
    text = _TIMES_X.sub(" * ", text).strip().rstrip("=").strip()
    # Percent becomes a power so that it binds to its operand alone: 10/20% is 10/0.2, not 0.5/100.
    text = _POSTFIX_PERCENT.sub(f"**{_PERCENT_MARK}", text)
    return _strip_thousands_separators(text)


def format_number(value: sympy.Expr) -> str:
    """Render a value for a model to read: exact when short, else with a 10-significant-digit decimal.

    Integers up to 100 digits print whole, terminating decimals of up to 20 significant digits
    exactly, other rationals as ``p/q ≈ decimal``, irrationals as ``sympy form ≈ decimal``
    (``≈ decimal`` alone when the form is longer than 30 characters or already a float).

    Example:
        >>> [format_number(evaluate(x)) for x in ("48/2", "30*.25", "sqrt(2)", "factorial(100)/3**200")]
        ['24', '7.5', 'sqrt(2) ≈ 1.414213562', '≈ 3.513603174e+62']
    """
    if value.is_Integer and abs(value.p) < 10**100:
        return str(value.p)
    form = "" if value.is_Number or value.has(reals.Opaque) else (reals.sympy_text(value) or "")
    if value.is_Rational and not value.is_Integer:
        exact = _rounded(Fraction(value.p, value.q), 20)
        if Fraction(exact) == Fraction(value.p, value.q):
            return _decimal_text(exact)
        form = f"{value.p}/{value.q}"
    if value.is_Rational:
        number: Fraction | Decimal = Fraction(value.p, value.q)
    else:  # certified: within 10**-13 of the value, relative to it
        number = Decimal(libmp.to_str(reals.approximate(value, SHOWN_DIGITS)._mpf_, SHOWN_DIGITS + 5))
    approx = _decimal_text(_rounded(number, SHOWN_DIGITS))
    return f"{form} ≈ {approx}" if form and len(form) <= 30 else f"≈ {approx}"


def _rounded(number: Fraction | Decimal, significant: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = significant
        return +number if isinstance(number, Decimal) else Decimal(number.numerator) / Decimal(number.denominator)


def _decimal_text(d: Decimal) -> str:
    """Plain notation from 1e-6 to 1e16, scientific outside; trailing zeros stripped."""
    if -7 < d.adjusted() < 16 or d == 0:
        text = format(d, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{d:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}e{int(exponent):+d}"


def _strip_thousands_separators(text: str) -> str:
    pieces, call_stack, last = [], [], 0
    for m in _CALL_PAREN_OR_GROUPED_NUMBER.finditer(text):
        token = m.group(0)
        if token.endswith("("):
            call_stack.append((m.group(1) or "").lower() in _MULTI_ARGUMENT)
        elif token == ")":
            call_stack = call_stack[:-1]
        elif not (call_stack and call_stack[-1]):  # inside max(1,000, 2) the comma separates arguments
            pieces.append(text[last:m.start()] + token.replace(",", ""))
            last = m.end()
    return "".join(pieces) + text[last:]


def _parse_checked(text: str) -> ast.expr:
    if len(text) > MAX_CHARS:
        raise ToolError(f"expression too long: expected at most {MAX_CHARS} characters, actual {len(text)}")
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth > MAX_NESTING:
            raise ToolError(f"too deeply nested: expected at most {MAX_NESTING} levels of parentheses")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolError(f"could not parse {text[:60]!r}: write one arithmetic expression, e.g. 48/2 + 3*(4-1)") from None
    stack, nodes = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise ToolError(f"expression too complex: expected at most {MAX_NODES} terms and {MAX_DEPTH} levels")
        if not isinstance(node, _ALLOWED_NODES):
            raise ToolError(f"unsupported syntax ({type(node).__name__}): {_SYNTAX_HINT}")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return tree


def _build(node: ast.expr, text: str) -> sympy.Expr:
    if isinstance(node, ast.Constant):
        return _literal(node, text)
    if isinstance(node, ast.Name):
        name = node.id.lower()
        if name in FUNCTIONS:
            raise ToolError(f"{node.id} is a function: call it, e.g. {node.id}(2)")
        if name not in CONSTANTS:
            raise ToolError(f"unknown name {node.id!r}: use numbers, pi, e and {', '.join(sorted(FUNCTIONS))}")
        return CONSTANTS[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _build(node.operand, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Name) and node.right.id == _PERCENT_MARK:
            return _checked(_build(node.left, text) / 100)
        return _checked(_BINARY[type(node.op)](_build(node.left, text), _build(node.right, text)))
    if isinstance(node, ast.Call):
        return _call(node, text)
    raise ToolError(f"unsupported syntax ({type(node).__name__}): {_SYNTAX_HINT}")


def _literal(node: ast.Constant, text: str) -> sympy.Rational:
    """The literal's own digits as an exact rational (0.1 is 1/10, not the float 0.1000000000000000055)."""
    source = ast.get_source_segment(text, node) or ""
    match = _DECIMAL_LITERAL.fullmatch(source)
    if isinstance(node.value, bool) or not isinstance(node.value, (int, float)) or not source or not match:
        raise ToolError(f"unsupported literal {source or node.value!r}: only decimal numbers are allowed")
    if match.group(1) and int(match.group(1)) > MAX_DIGITS:
        raise ToolError(f"number out of range: {source} has more than {MAX_DIGITS} digits")
    return _checked(sympy.Rational(Fraction(source.replace("_", ""))))


def _call(node: ast.Call, text: str) -> sympy.Expr:
    if not isinstance(node.func, ast.Name):
        hint = " (write 2*(3+4), not 2(3+4))" if isinstance(node.func, (ast.Constant, ast.BinOp)) else ""
        raise ToolError(f"only calls of named functions are allowed{hint}")
    name = node.func.id.lower()
    if name not in FUNCTIONS:
        raise ToolError(f"unknown function {node.func.id!r}: expected one of {', '.join(sorted(FUNCTIONS))}")
    fewest, most, function = FUNCTIONS[name]
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ToolError(f"{name} takes plain positional arguments, e.g. {name}(2)")
    if not fewest <= len(node.args) <= most:
        expected = fewest if fewest == most else f"{fewest} to {most}"
        raise ToolError(f"{name} expects {expected} argument(s), actual {len(node.args)}")
    return _checked(function(*(_build(arg, text) for arg in node.args)))


def _checked(value: sympy.Expr) -> sympy.Expr:
    """Reject values that are undefined, complex or beyond :data:`MAX_DIGITS` digits; make an exact
    zero written irrationally 0; wrap big symbolic values as opaque atoms (see :data:`EXACT_DIGITS`)."""
    if value.is_Rational:
        if max(value.p.bit_length(), value.q.bit_length()) > MAX_DIGITS * math.log2(10):
            raise ToolError(f"number out of range: more than {MAX_DIGITS} digits")
        return value
    if value.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise ToolError("undefined result (division by zero, log(0), tan(pi/2), ...)")
    if value.has(sympy.I):
        raise ToolError(f"result is not a real number: {reals.short(value)}")
    if reals.sign(value) == 0:  # certified; sympy's own evalf divides by zero on log(1 + 10**-40)
        return sympy.Integer(0)
    if abs(reals.log10_abs(value)) > MAX_DIGITS:
        raise ToolError(f"number out of range: more than {MAX_DIGITS} digits")
    if not isinstance(value, reals.Opaque) and _too_big_for_algebra(value):
        return reals.Opaque(value)
    return value


def _too_big_for_algebra(value: sympy.Expr) -> bool:
    for count, node in enumerate(sympy.preorder_traversal(value), 1):
        if count > MAX_SYMBOLIC_NODES or _big_rational(node):
            return True
    return False


def _big_rational(x: sympy.Expr) -> bool:
    return bool(x.is_Rational and max(abs(x.p), x.q) > _EXACT_LIMIT)


def _opaque(unevaluated: sympy.Expr) -> sympy.Expr:
    """An exact value sympy must not simplify, once it is known to be real."""
    if unevaluated.is_Rational:
        return unevaluated
    try:
        reals.enclose(unevaluated, reals.FIRST_BITS)
    except reals.Undecidable:
        raise ToolError(f"result is not a real number: {reals.short(unevaluated)}") from None
    return reals.Opaque(unevaluated)


def _is_negative(x: sympy.Expr) -> bool:
    # Not x.is_negative: sympy's assumption system may run a primality test on a 1000-digit integer.
    return reals.sign(x) < 0


def _divide(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    if b == 0:  # b is checked: an exact zero is the Integer 0 by now
        raise ToolError("division by zero")
    return a / b


def _modulo(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """Python's modulo (takes the sign of b), by hand: sympy's Mod is wrong on huge irrationals."""
    if b == 0:
        raise ToolError("modulo by zero")
    return _checked(a - b * reals.floor(_checked(a / b)))


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    if base == 0:
        if _is_negative(exponent):
            raise ToolError("division by zero: 0 to a negative power")
        return sympy.Integer(0 if exponent != 0 else 1)
    if base == 1 or exponent == 0:
        return sympy.Integer(1)
    if base == -1 and exponent.is_Integer:  # parity, not a 10**2999-step power
        return sympy.Integer(-1 if exponent.p % 2 else 1)
    if _is_negative(base) and exponent.is_Integer:
        return _power(-base, exponent) * (-1 if exponent.p % 2 else 1)
    # digits of the value, and of the exact rational it would be: 0.999**9999 is 4.5e-5 over 30,000 digits
    if _log10_digits(base) + reals.log10_abs(exponent) > math.log10(MAX_DIGITS):
        raise ToolError(f"result too large: ({reals.short(base)})**({reals.short(exponent)}) has more than {MAX_DIGITS} digits")
    size = max(math.log10(abs(base.p)), math.log10(base.q)) if base.is_Rational else 0
    exact = size == 0 or math.log10(size) + reals.log10_abs(exponent) <= math.log10(MAX_DIGITS)
    if exponent.is_Integer:
        return base**exponent if exact or not base.is_Rational else _opaque(sympy.Pow(base, exponent, evaluate=False))
    if _is_negative(base):
        if not (exponent.is_Rational and exponent.q % 2 == 1):
            raise ToolError(f"result is not a real number: ({reals.short(base)})**({reals.short(exponent)})")
        root = _power(-base, exponent)  # the real odd root, not sympy's complex principal root
        return -root if exponent.p % 2 else root
    # sympy's exact roots factorise: (pi/50)**(1/5**9) takes minutes, 10**(1/5**300) gigabytes.
    small_exponent = not exponent.is_Rational or max(abs(exponent.p), exponent.q) <= 1000
    if small_exponent and not _big_rational(base):
        return base**exponent
    return _opaque(sympy.Pow(base, exponent, evaluate=False))


def _log10_digits(base: sympy.Expr) -> float:
    """log10 of ``|log10 |base||``: ``base**n`` has about ``|n| * 10**this`` digits (or its reciprocal has).

    Near 1 the logarithm comes from ``|base| - 1``: log10(1 + 10**-40) is 0.0 in floating point.
    """
    size = abs(reals.log10_abs(base))
    if size > 1e-6:
        return math.log10(size)
    return reals.log10_abs(_absolute(base) - 1) - math.log10(math.log(10))  # log10(1 + d) ~ d / ln 10


def _absolute(x: sympy.Expr) -> sympy.Expr:
    return -x if _is_negative(x) else x


def _round(x: sympy.Expr, ndigits: sympy.Expr = sympy.Integer(0)) -> sympy.Expr:
    if not ndigits.is_Integer or abs(ndigits.p) > 100:
        raise ToolError(f"round(x, n) expects a whole number n from -100 to 100, actual {reals.short(ndigits)}")
    scale = sympy.Integer(10) ** ndigits
    magnitude = reals.floor(_absolute(x) * scale + sympy.Rational(1, 2)) / scale
    return -magnitude if _is_negative(x) else magnitude


def _extreme(direction: int) -> Callable[..., sympy.Expr]:
    """min (direction -1) or max (1), by exact comparison; the first of equal values."""
    def extreme(*args: sympy.Expr) -> sympy.Expr:
        best = args[0]
        for arg in args[1:]:
            if reals.compare(arg, best) == direction:
                best = arg
        return best
    return extreme


def _factorial(n: sympy.Expr) -> sympy.Expr:
    if not (n.is_Integer and 0 <= n.p <= MAX_FACTORIAL):
        raise ToolError(f"factorial expects a whole number from 0 to {MAX_FACTORIAL}, actual {reals.short(n)}")
    return sympy.Integer(math.factorial(n.p))


def _comb(n: sympy.Expr, k: sympy.Expr) -> sympy.Expr:
    if not (n.is_Integer and k.is_Integer and 0 <= k.p <= n.p <= 10**6):
        raise ToolError(f"comb(n, k) expects whole numbers 0 <= k <= n <= 1000000, actual {reals.short(n)}, {reals.short(k)}")
    if (math.lgamma(n.p + 1) - math.lgamma(k.p + 1) - math.lgamma(n.p - k.p + 1)) / math.log(10) > MAX_DIGITS:
        raise ToolError(f"result too large: comb({n.p}, {k.p}) has more than {MAX_DIGITS} digits")
    return sympy.Integer(math.comb(n.p, k.p))


def _on_integers(name: str, function: Callable[..., int]) -> Callable[..., sympy.Expr]:
    def wrapped(*args: sympy.Expr) -> sympy.Expr:
        if not all(a.is_Integer for a in args):
            raise ToolError(f"{name} expects whole numbers, actual {', '.join(map(reals.short, args))}")
        return sympy.Integer(function(*(a.p for a in args)))
    return wrapped


def _transcendental(function: Callable[..., sympy.Expr]) -> Callable[..., sympy.Expr]:
    """Exact sympy on small arguments; on a big or opaque one the same value left unevaluated
    (sympy's exact log(1000!) tests primality for seconds; its sin() of a huge sum compares it with pi
    and fails)."""
    def wrapped(*args: sympy.Expr) -> sympy.Expr:
        if not any(a.has(reals.Opaque) or _too_big_for_algebra(a) for a in args):
            try:
                return function(*args)
            except (TypeError, AttributeError, RecursionError):  # acos(cos(exp(1000))) asks sympy if exp(1000) > pi
                pass
        return _opaque(function(*args, evaluate=False))
    return wrapped


def _log(x: sympy.Expr, base: sympy.Expr | None = None, evaluate: bool = True) -> sympy.Expr:
    for value in (x,) if base is None else (x, base):
        if value == 0:
            raise ToolError("undefined result: log(0)")
        if _is_negative(value):
            raise ToolError(f"result is not a real number: the logarithm of a negative number {reals.short(value)}")
    if base == 1:
        raise ToolError("undefined result: a logarithm to base 1 divides by log(1) = 0")
    if base is None or evaluate:
        return sympy.log(x, evaluate=evaluate) if base is None else sympy.log(x, base)
    if x.is_Rational and base.is_Rational:  # log(1e300, 10) is 300, not a proof away from it
        size = math.log10(abs(base.p)) - math.log10(base.q)
        n = round((math.log10(abs(x.p)) - math.log10(x.q)) / size) if size else 0
        if abs(n) <= MAX_DIGITS * 4 and base**n == x:
            return sympy.Integer(n)
    return sympy.Mul(sympy.log(x, evaluate=False), sympy.Pow(sympy.log(base, evaluate=False), -1, evaluate=False), evaluate=False)


def _inverse_sine(function: Callable[..., sympy.Expr]) -> Callable[..., sympy.Expr]:
    """asin or acos, real on [-1, 1] only (sympy leaves asin(2) a complex value in disguise)."""
    def wrapped(x: sympy.Expr, evaluate: bool = True) -> sympy.Expr:
        if reals.compare(_absolute(x), sympy.Integer(1)) > 0:
            raise ToolError(f"result is not a real number: {function.__name__}({reals.short(x)}) needs a value from -1 to 1")
        return function(x, evaluate=evaluate)
    return wrapped


def _exp(x: sympy.Expr, evaluate: bool = True) -> sympy.Expr:
    if x != 0 and reals.log10_abs(x) > math.log10(MAX_DIGITS * math.log(10)):
        raise ToolError(f"result out of range: exp({reals.short(x)}) has more than {MAX_DIGITS} digits")
    return sympy.exp(x, evaluate=evaluate)


def _rational_digits(node: ast.expr, text: str) -> int | None:
    """An upper bound on the digits of numerator plus denominator of ``node``'s value, or None when
    the value may be irrational or its size is not bounded by the tree alone (see :func:`is_cheap`)."""
    if isinstance(node, ast.Constant):
        match = _DECIMAL_LITERAL.fullmatch(ast.get_source_segment(text, node) or "")
        exponent = int(match.group(1)) if match and match.group(1) and len(match.group(1)) < 6 else None
        return None if not match or isinstance(node.value, bool) else len(match.group(0)) + (exponent or 0)
    if isinstance(node, ast.UnaryOp):
        return _rational_digits(node.operand, text)
    if isinstance(node, ast.BinOp):
        return _binary_digits(node, text)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.lower() in _RATIONAL_CALLS:
        sizes = [_rational_digits(arg, text) for arg in node.args]
        if None in sizes or node.keywords:
            return None
        if node.func.id.lower() != "round":
            return sum(sizes) + 1
        places = _integer_literal(node.args[1]) if len(node.args) > 1 else 0
        return None if places is None else 2 * sizes[0] + 2 * abs(places) + 4  # (|x| * 10**n + 1/2) // 1
    return None


def _binary_digits(node: ast.BinOp, text: str) -> int | None:
    if isinstance(node.op, ast.Pow):
        left = _rational_digits(node.left, text)
        if isinstance(node.right, ast.Name) and node.right.id == _PERCENT_MARK:
            return None if left is None else left + 3
        power = _integer_literal(node.right)
        return None if left is None or power is None or abs(power) > CHEAP_DIGITS else left * max(1, abs(power))
    left, right = _rational_digits(node.left, text), _rational_digits(node.right, text)
    if left is None or right is None:
        return None
    return 3 * (left + right) + 2 if isinstance(node.op, ast.Mod) else left + right + 1  # a - b*floor(a/b)


def _integer_literal(node: ast.expr) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _integer_literal(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


_BINARY: dict[type, Callable[[sympy.Expr, sympy.Expr], sympy.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: _divide,
    ast.FloorDiv: lambda a, b: reals.floor(_checked(_divide(a, b))),
    ast.Mod: _modulo,
    ast.Pow: _power,
}
FUNCTIONS: dict[str, tuple[int, int, Callable[..., sympy.Expr]]] = {
    "sqrt": (1, 1, lambda x: _power(x, sympy.Rational(1, 2))),
    "cbrt": (1, 1, lambda x: _power(x, sympy.Rational(1, 3))),
    "exp": (1, 1, _transcendental(_exp)),
    "log": (1, 2, _transcendental(_log)),
    "ln": (1, 1, _transcendental(_log)),
    "log10": (1, 1, _transcendental(lambda x, evaluate=True: _log(x, sympy.Integer(10), evaluate))),
    "log2": (1, 1, _transcendental(lambda x, evaluate=True: _log(x, sympy.Integer(2), evaluate))),
    **{name: (1, 1, _transcendental(getattr(sympy, name))) for name in ("sin", "cos", "tan", "atan")},
    "asin": (1, 1, _transcendental(_inverse_sine(sympy.asin))),
    "acos": (1, 1, _transcendental(_inverse_sine(sympy.acos))),
    "abs": (1, 1, _absolute),
    "floor": (1, 1, reals.floor),
    "ceil": (1, 1, lambda x: -reals.floor(-x)),
    "ceiling": (1, 1, lambda x: -reals.floor(-x)),
    "round": (1, 2, _round),
    "min": (1, 20, _extreme(-1)),
    "max": (1, 20, _extreme(1)),
    "factorial": (1, 1, _factorial),
    "comb": (2, 2, _comb),
    "gcd": (2, 20, _on_integers("gcd", math.gcd)),
    "lcm": (2, 20, _on_integers("lcm", math.lcm)),
}
"""Function name -> (fewest arguments, most arguments, implementation on sympy values)."""
CONSTANTS = {"pi": sympy.pi, "e": sympy.E}
_MULTI_ARGUMENT = {name for name, (_, most, _) in FUNCTIONS.items() if most > 1}
_RATIONAL_CALLS = {"abs", "floor", "ceil", "ceiling", "round", "min", "max", "gcd", "lcm"}
"""Functions whose value is rational, with digits bounded by their arguments', when theirs are."""

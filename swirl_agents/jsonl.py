"""JSON Lines files, the one way swirl reads and writes its records (episodes, judgments, transitions, faults).

- :class:`JsonlAppender`: one JSON object per line, written whole and flushed, so a crash leaves at
  most one torn last line, which the next open drops; one writer per file at a time (an exclusive
  lock; a second process gets a clear message, not interleaved lines).
- :func:`write_jsonl`: a whole file at once, atomically (a temporary file, then a rename).
- :func:`read_jsonl`: every line parsed and checked; a bad line raises :class:`RecordError` naming
  the file, the line and what is wrong (``episodes.jsonl:12: field 'steps': expected a list, actual int``).
- :func:`from_record`: a frozen dataclass from a dict, each field checked against its annotation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from swirl_env.context import safe_text

T = TypeVar("T")


class RecordError(ValueError):
    """A record file holds a line that is not a valid record (the message names the file and line)."""


class FileLockedError(RuntimeError):
    """Another process is writing the same run (the message says which file and how to proceed)."""


def dump_line(record: dict[str, Any]) -> str:
    """One record as a JSON line (UTF-8 text, no ASCII escaping, ending in a newline).

    A lone surrogate (from a custom agent or a server) becomes U+FFFD, so every record can be written.
    """
    return safe_text(json.dumps(record, ensure_ascii=False)) + "\n"


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` to ``path`` atomically (temp file + rename); return how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(dump_line(record))
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_jsonl(path: str | os.PathLike, parse: Callable[[dict[str, Any]], T], what: str, *,
               skip_torn_tail: bool = False) -> Iterator[T]:
    """Yield ``parse(record)`` for every line of ``path``; a bad line raises :class:`RecordError` with ``file:line``.

    ``skip_torn_tail`` drops a last line without its newline that does not parse (a write cut by a crash).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = open(path, "w").write('{"a": 1}\\n[2]\\n')
        >>> list(read_jsonl(path, lambda r: r["a"], "demo"))
        Traceback (most recent call last):
        ...
        swirl_agents.jsonl.RecordError: ...x.jsonl:2: not a valid demo record: expected a JSON object, actual list
    """
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    last = len(lines) - (1 if lines and lines[-1] == b"" else 0)
    for lineno, raw in enumerate(lines[:last], 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise TypeError(f"expected a JSON object, actual {type(record).__name__}")
            yield parse(record)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, ValueError, IndexError) as e:
            if skip_torn_tail and lineno == last and lines[-1] != b"":
                return
            if isinstance(e, RecordError):
                raise
            raise RecordError(f"{path}:{lineno}: not a valid {what} record: {_message(e)}") from None


def _message(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"missing field {e.args[0]!r}"
    if isinstance(e, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {e.start}"
    return str(e)


class JsonlAppender:
    """Append records to a JSON Lines file, crash-safe, one writer at a time.

    Opening drops a torn last line (so appends start on a line boundary) and takes an exclusive lock
    on ``<file>.lock``, held until :meth:`close`; a second writer raises :class:`FileLockedError`.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False):
        self.path = Path(path)
        self._lock = _acquire(self.path.with_name(self.path.name + ".lock"), self.path)
        self.path.touch(exist_ok=True)
        repair_tail(self.path)
        self.fsync = fsync
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one whole line and flush it (and fsync with ``fsync=True``)."""
        # One write call per whole line: a crash leaves at most one torn line at the end.
        self._file.write(dump_line(record))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        _release(self._lock)

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acquire(lock_path: Path, what: Path) -> Any:
    """An exclusive lock on ``lock_path`` (created), or :class:`FileLockedError` naming ``what``."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FileLockedError(f"{what} is being written by another process; wait for it to finish (or stop it), "
                              "then run again: the run resumes where it stopped") from None
    return handle


def _release(handle: Any) -> None:
    if not handle.closed:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively inside the block: one process writes a run folder at a time.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with folder_lock(folder):
        ...     with folder_lock(folder): pass
        Traceback (most recent call last):
        ...
        swirl_agents.jsonl.FileLockedError: ... is being written by another process; ...
    """
    handle = _acquire(Path(folder) / ".lock", Path(folder))
    try:
        yield
    finally:
        _release(handle)


def repair_tail(path: Path) -> None:
    """Drop a torn last line (a crash mid-write) so appends start on a line boundary."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        pos, chunk = size - 1, 1 << 16
        while pos > 0:  # walk back to the last newline; everything after it is an incomplete record
            start = max(0, pos - chunk)
            f.seek(start)
            nl = f.read(pos - start).rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            pos = start
        f.truncate(0)


def from_record(cls: type[T], record: dict[str, Any], *, convert: dict[str, Callable[[Any], Any]] | None = None) -> T:
    """``cls(**record)`` for a dataclass, unknown keys ignored, each known field checked against its annotation.

    ``convert[name]`` turns a field's JSON value into its Python form (and checks it) before the type check.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class P:
        ...     name: str
        ...     n: int = 0
        >>> from_record(P, {"name": "a", "n": 2, "extra": 1})
        P(name='a', n=2)
        >>> from_record(P, {"name": 3})
        Traceback (most recent call last):
        ...
        TypeError: field 'name': expected str, actual int
    """
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in record:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise KeyError(f.name)
            continue
        value = record[f.name]
        if convert and f.name in convert:
            try:
                value = convert[f.name](value)
            except (TypeError, ValueError, KeyError) as e:
                raise TypeError(f"field {f.name!r}: {_message(e)}") from None
        if not _matches(value, hints[f.name]):
            raise TypeError(f"field {f.name!r}: expected {_type_name(hints[f.name])}, actual {type(value).__name__}")
        values[f.name] = value
    return cls(**values)


def _matches(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        inner = args[0] if args else Any
        return all(_matches(v, inner) for v in value) if inner is not Ellipsis else True
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "an object"
    return getattr(tp, "__name__", str(tp))

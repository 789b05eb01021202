"""Where data files are found, and the error raised when one is missing or malformed."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

ENV_VAR = "SWIRL_DATA_DIR"

HOW_TO_GET = {
    "hotpotqa": "HotpotQA: https://hotpotqa.github.io (hotpot_dev_distractor_v1.json)",
    "musique": "MuSiQue: https://github.com/StonyBrookNLP/musique (musique_ans_v1.0_dev.jsonl)",
    "gsm8k": "GSM8K: https://github.com/openai/grade-school-math (grade_school_math/data/*.jsonl)",
    "beerqa": "BeerQA: https://beerqa.github.io (beerqa_dev_v1.0.json)",
    "cofca": "CofCA: https://github.com/Wyr-TAMU/CofCA (the published JSON files)",
    "bamboogle": "Bamboogle: https://github.com/ofirpress/self-ask (bamboogle.csv)",
    "2wikimultihopqa": "2WikiMultihopQA: https://github.com/Alab-NII/2wikimultihop (dev.json)",
    "wikipedia": "a JSONL corpus of {title, text} paragraphs",
}


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file (and line) and the fix.

    Every loader raises this, and only this, for a bad file: a truncated or fake gzip, bytes that
    are not UTF-8, invalid JSON, a record without a required key. ``path`` and ``line`` say where
    (``line`` is None when the problem has no line, e.g. a bad gzip header).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None):
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line


def data_dir() -> Path:
    """The data root: ``$SWIRL_DATA_DIR`` if set, else ``./data`` if it exists, else the nearest
    ``shared/data`` beside a folder above the checkout (``../shared/data`` for a clone, also for a
    git worktree nested deeper)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    for candidate in (Path("data"), Path("../shared/data"), *(p / "shared" / "data" for p in checkout.parents)):
        if candidate.is_dir():
            return candidate
    return Path("data")


def resolve(candidates: tuple[str, ...], dataset: str, path: str | os.PathLike | None = None) -> Path:
    """Return ``path`` if given, else the first of ``candidates`` (relative to :func:`data_dir`) that exists.

    Raises:
        DataError: naming the file looked for and how to obtain it.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"{dataset} data file not found: {p}. Get it from {HOW_TO_GET.get(dataset, 'its publisher')}.")
        return p
    root = data_dir()
    for rel in candidates:
        if (root / rel).exists():
            return root / rel
    tried = ", ".join(str(root / c) for c in candidates)
    raise DataError(
        f"{dataset} data not found (looked for {tried}). Set {ENV_VAR} to the folder that holds it, "
        f"or pass the file explicitly (data_path=... for an env, path=... for load_questions). Get it from {HOW_TO_GET.get(dataset, 'its publisher')}."
    )


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` for every line of a UTF-8 file (``.gz`` read transparently).

    Raises:
        DataError: naming the file and the line for bytes that are not UTF-8, a gzip stream that
            ends early, or a ``.gz`` that is not gzip.
    """
    lineno = 0
    with _reading(path, lambda: lineno + 1), _open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            yield lineno, _decode(raw, path, lineno, first=lineno == 1)


def read_text(path: str | os.PathLike) -> str:
    """The whole file as text; errors as in :func:`iter_lines`, with the line of a bad byte."""
    with _reading(path, lambda: None), _open_binary(path) as f:
        data = f.read()
    return _decode(data, path, 1, first=True)


def read_json(path: str | os.PathLike) -> object:
    """Parse a whole JSON file; a syntax error names the file, line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})", path=path, line=e.lineno) from None
    except (ValueError, RecursionError) as e:  # a 5,000-digit number, nesting 100,000 deep
        raise DataError(f"{path}: invalid JSON ({_reason(e)})", path=path) from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line; a bad line names the file and line."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})", path=path, line=lineno) from None
        except (ValueError, RecursionError) as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({_reason(e)})", path=path, line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, actual {type(obj).__name__}", path=path, line=lineno)
        yield lineno, obj


def _open_binary(path: str | os.PathLike) -> io.BufferedIOBase:
    p = Path(path)
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")


@contextlib.contextmanager
def _reading(path: str | os.PathLike, line: Callable[[], int | None]) -> Iterator[None]:
    """Turn what a damaged file raises while being read into a DataError naming it."""
    try:
        yield
    except gzip.BadGzipFile as e:
        raise DataError(f"{path}: not a gzip file ({e}); decompress or rename it without .gz", path=path) from None
    except (EOFError, zlib.error) as e:
        where = f"{path}:{line()}" if line() else str(path)
        what = "the gzip data ends early" if isinstance(e, EOFError) else f"corrupt gzip data ({e})"
        raise DataError(f"{where}: {what}: the file is truncated or damaged; fetch it again", path=path, line=line()) from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected a data file, actual a directory", path=path) from None


def _decode(raw: bytes, path: str | os.PathLike, lineno: int, *, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        line = lineno + raw.count(b"\n", 0, e.start)
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 (byte {raw[e.start:e.start + 1]!r} at column {column}); "
            "re-save the file as UTF-8",
            path=path, line=line,
        ) from None


def _reason(error: Exception) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else str(error).split(";")[0][:120]

"""Reading raw records from JSON, JSONL and CSV files, with errors that name the file and the record.

Every loader in :mod:`swirl_env.data` goes through these helpers, so a malformed file reports the
same way whatever the benchmark: ``expected key 'question' in record 12 of /path/dev.json``.
"""

from __future__ import annotations

import csv
import html
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from swirl_env.data import tables
from swirl_env.data.paths import DataError, iter_jsonl, iter_lines, read_json


@dataclass(frozen=True)
class Record:
    """One raw record and where it came from."""

    index: int
    """0-based position among the file's records (blank JSONL lines are not records)."""
    where: str
    """Human-readable location for error messages: ``line 3 of F`` or ``record 12 of F``."""
    data: dict


def is_jsonl(path: str | os.PathLike) -> bool:
    """True for ``*.jsonl`` (optionally ``.gz``); otherwise decided by the first non-blank line."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".jsonl"):
        return True
    if name.endswith(".json"):
        return False
    for _, line in iter_lines(path):
        if line.strip():
            # A JSONL file starts with a complete object on its first line.
            return line.lstrip().startswith("{") and line.rstrip().endswith("}")
    return False


def iter_records(path: str | os.PathLike, *, list_key: str | None = None) -> Iterator[Record]:
    """Yield every record of a JSONL file, a JSON list, a JSON object holding a list, or a table.

    Tables are the Hugging Face ``datasets`` schemas stored locally: a ``.parquet`` file (the Hub's
    exports, ``Dataset.to_parquet``), an ``.arrow`` file, or a ``Dataset.save_to_disk`` folder; each
    row is one record, nested columns as nested dicts and lists (``pip install pyarrow``).

    Args:
        path: the file (``.gz`` is read transparently) or ``save_to_disk`` folder.
        list_key: for a top-level JSON object, the key of the record list (BeerQA: ``"data"``).

    Raises:
        DataError: malformed JSON (with line), a wrong top-level type, or a record that is not an object.
    """
    if tables.is_table(path):
        for index, (where, obj) in enumerate(tables.iter_rows(path)):
            yield Record(index, where, obj)
        return
    if is_jsonl(path):
        for index, (lineno, obj) in enumerate(iter_jsonl(path)):
            yield Record(index, f"line {lineno} of {path}", obj)
        return
    items = _top_level_list(read_json(path), path, list_key)
    for index, obj in enumerate(items):
        where = f"record {index} of {path}"
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object in {where}, actual {type(obj).__name__}")
        yield Record(index, where, obj)


def _top_level_list(obj: object, path: str | os.PathLike, list_key: str | None) -> list:
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and list_key is not None and isinstance(obj.get(list_key), list):
        return obj[list_key]
    expected = "a JSON list of records" + (f" or an object with a {list_key!r} list" if list_key else "")
    actual = f"an object with keys {sorted(obj)[:8]}" if isinstance(obj, dict) else type(obj).__name__
    raise DataError(f"{path}: expected {expected}, actual {actual}. Is this the right file for this loader?")


def iter_csv_rows(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, cells)`` for each non-empty CSV row."""
    reader = csv.reader(line for _, line in iter_lines(path))
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: invalid CSV ({e})", path=path, line=reader.line_num) from None


def take(records: Iterator[Record], limit: int | None) -> Iterator[Record]:
    """Stop after ``limit`` records (``None``: all), without reading further lines of a JSONL file."""
    return itertools.islice(records, limit)


def require(record: Record, key: str, kind: type | tuple[type, ...] = str) -> object:
    """Return ``record.data[key]``, which must exist and be of ``kind``.

    Raises:
        DataError: ``expected key 'question' in record 12 of F (keys present: ...)``.
    """
    if key not in record.data:
        raise DataError(f"expected key {key!r} in {record.where} (keys present: {sorted(record.data)})")
    return check_type(record.data[key], kind, f"{key!r} in {record.where}")


def optional(record: Record, key: str, kind: type | tuple[type, ...], default: object) -> object:
    """Return ``record.data[key]`` if present and not null (checked against ``kind``), else ``default``."""
    value = record.data.get(key)
    if value is None:
        return default
    return check_type(value, kind, f"{key!r} in {record.where}")


def check_type(value: object, kind: type | tuple[type, ...], what: str) -> object:
    """Return ``value`` if it is a ``kind``, else raise a DataError naming ``what``."""
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"expected {what} to be {names}, actual {type(value).__name__} {str(value)[:60]!r}")
    return value


def record_id(record: Record, dataset: str, split: str, keys: tuple[str, ...] = ("_id", "id")) -> str:
    """The record's own id (first present of ``keys``), else a stable ``<dataset>-<split>-<index>``."""
    for key in keys:
        value = record.data.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return f"{dataset}-{split}-{record.index}"


def answers_tuple(*candidates: object) -> tuple[str, ...]:
    """Flatten strings and lists of strings into a tuple, stripped, without blanks or repeats, order kept.

    Stripping matters: published files carry stray newlines (one Bamboogle answer is ``"George VI\\n"``).
    """
    out: list[str] = []
    for candidate in candidates:
        items = candidate if isinstance(candidate, (list, tuple)) else [candidate]
        out += [str(a).strip() for a in items if a is not None and str(a).strip()]
    return tuple(dict.fromkeys(out))


def clean_title(title: object) -> str:
    """A paragraph title with HTML entities decoded (``A&amp;M`` -> ``A&M``), as the search corpus stores it."""
    return html.unescape(str(title))

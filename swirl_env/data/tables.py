"""Records from Hugging Face ``datasets`` tables saved locally: Parquet, Arrow, ``save_to_disk`` folders.

The Hub serves HotpotQA (``hotpot_qa``), MuSiQue and GSM8K (``openai/gsm8k``) as Parquet, and
``datasets`` saves a dataset as Arrow files in a folder. A row read with pyarrow is the same
record the JSON loaders read (HotpotQA's ``supporting_facts: {title: [], sent_id: []}`` columns,
MuSiQue's list of paragraph structs, GSM8K's ``question`` and ``answer``), so every loader reads
these too. pyarrow is imported only when a table is read.

Example:
    >>> is_table("validation-00000-of-00001.parquet"), is_table("dev.json")
    (True, False)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from swirl_env.data.paths import DataError

TABLE_SUFFIXES = (".parquet", ".arrow")
_BATCH_ROWS = 1024


def is_table(path: str | os.PathLike) -> bool:
    """A ``.parquet`` or ``.arrow`` file, or a folder written by ``Dataset.save_to_disk``."""
    p = Path(path)
    return p.suffix.lower() in TABLE_SUFFIXES or (p.is_dir() and (p / "state.json").exists())


def split_folder(path: str | os.PathLike, split: str) -> Path:
    """For a ``DatasetDict.save_to_disk`` folder, the folder of ``split``; any other path unchanged.

    Raises:
        DataError: the folder has no such split (the message lists those it has).
    """
    p = Path(path)
    if not (p.is_dir() and (p / "dataset_dict.json").exists()):
        return p
    splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
    if split not in splits:
        raise DataError(f"{p}: expected a split {split!r} in this DatasetDict folder, actual {splits}; pass split=...", path=p)
    return p / split


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Yield ``(where, row)`` for every row: ``where`` is ``row 12 of F`` for error messages.

    Raises:
        DataError: the file is not a readable table (naming it), or pyarrow is not installed.
    """
    pa = _pyarrow()
    offset = 0
    for file in _files(Path(path)):
        try:
            for batch in _batches(file, pa):
                for i, row in enumerate(batch.to_pylist()):
                    yield f"row {offset + i} of {file}", row
                offset += batch.num_rows
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{file}: not a readable {file.suffix or 'Arrow'} table ({error}); fetch or save it again",
                            path=file) from None


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    state = json.loads((path / "state.json").read_text())
    return [path / f["filename"] for f in state.get("_data_files", [])]


def _batches(file: Path, pa) -> Iterator:
    if file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(file).iter_batches(batch_size=_BATCH_ROWS)
        return
    import pyarrow.ipc as ipc

    with pa.memory_map(str(file)) as source:
        try:
            reader = ipc.open_stream(source)  # what save_to_disk writes
        except pa.ArrowInvalid:
            source.seek(0)
            reader = ipc.open_file(source)
            yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
            return
        yield from reader


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise DataError("reading Parquet or Arrow data needs pyarrow: pip install pyarrow") from None
    return pyarrow

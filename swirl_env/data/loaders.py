"""One entry point for every benchmark: ``load_questions(name, path=None, split=..., limit=...)``.

Each benchmark module reads its published formats from an explicit path; this module knows where
the files usually live (:data:`DATASETS`, relative to :func:`swirl_env.data.paths.data_dir`) and
dispatches by name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

from swirl_env.data import beerqa, cofca, gsm8k, hotpotqa, musique, simple
from swirl_env.data.paths import resolve
from swirl_env.data.tables import split_folder
from swirl_env.data.types import Question

Reader = Callable[..., list[Question]]
"""``reader(path, *, split, limit) -> list[Question]``."""

_READERS: dict[str, Reader] = {
    "hotpotqa": hotpotqa.read_hotpotqa,
    "musique": musique.read_musique,
    "gsm8k": gsm8k.read_gsm8k,
    "beerqa": beerqa.read_beerqa,
    "cofca": cofca.read_cofca,
    "bamboogle": simple.read_bamboogle,
    "2wikimultihopqa": simple.read_2wikimultihopqa,
}

DATASETS: dict[str, dict[str, tuple[str, ...]]] = {
    "hotpotqa": hotpotqa.DEFAULT_FILES,
    "musique": musique.DEFAULT_FILES,
    "gsm8k": gsm8k.DEFAULT_FILES,
    "beerqa": beerqa.DEFAULT_FILES,
    "cofca": cofca.DEFAULT_FILES,
    "bamboogle": simple.BAMBOOGLE_FILES,
    "2wikimultihopqa": simple.TWOWIKI_FILES,
}
"""Dataset name -> split -> candidate files relative to the data directory, tried in order.

The first split listed is the dataset's evaluation split, used when ``split`` is not given.
"""

UNANSWERED_SPLITS: dict[str, tuple[str, ...]] = {"hotpotqa": ("test",), "musique": ("test",), "beerqa": ("test",)}
"""Splits whose published files hold questions without answers (fine for generating, not for scoring)."""


def load_questions(
    dataset: str,
    path: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    limit: int | None = None,
) -> list[Question]:
    """Load a benchmark's questions as frozen :class:`Question` records.

    Args:
        dataset: one of :data:`DATASETS` (``hotpotqa``, ``musique``, ``gsm8k``, ``beerqa``, ``cofca``,
            ``bamboogle``, ``2wikimultihopqa``); case-insensitive.
        path: a file in any format the dataset's reader accepts, including the Hugging Face schema
            saved as Parquet, Arrow or a ``save_to_disk`` folder (see :mod:`swirl_env.data.tables`).
            ``None``: the first of the split's default files found under the data directory
            (``$SWIRL_DATA_DIR``).
        split: ``dev``, ``train``, ``test``...; ``None`` means the dataset's evaluation split (``dev``
            where there is one, ``test`` for GSM8K, Bamboogle and CofCA). With an explicit ``path``
            any name is accepted: it only labels generated ids.
        limit: stop after this many questions (``None``: all).

    Raises:
        ValueError: an unknown dataset or split, or a negative limit; the message lists valid names.
        DataError: the file is missing (with where to get it) or malformed (with file and line).

    Example:
        >>> qs = load_questions("gsm8k", split="test", limit=3)
        >>> [q.id for q in qs]
        ['gsm8k-test-0', 'gsm8k-test-1', 'gsm8k-test-2']
        >>> load_questions("hotpot")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'hotpot'. Did you mean 'hotpotqa'? Expected one of: hotpotqa, musique, ...
    """
    name = _check_dataset(dataset)
    split = split or next(iter(DATASETS[name]))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"expected limit to be None or an int >= 0, actual {limit!r}")
    if path is None:
        path = resolve(_check_split(name, split), name)
    else:
        path = split_folder(resolve((), name, path), split)
    return _READERS[name](path, split=split, limit=limit)


def _check_dataset(dataset: str) -> str:
    name = str(dataset).strip().lower()
    if name in DATASETS:
        return name
    close = difflib.get_close_matches(name, DATASETS, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown dataset {dataset!r}.{hint} Expected one of: {', '.join(DATASETS)}")


def _check_split(name: str, split: str) -> tuple[str, ...]:
    splits = DATASETS[name]
    if split in splits:
        return splits[split]
    close = difflib.get_close_matches(split, splits, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown split {split!r} for {name}.{hint} Expected one of: {', '.join(splits)} "
        f"(or pass path=... to read any file)"
    )

"""A persistent judgment cache: re-judging the same steps makes no new model calls."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from swirl_env.context import Context, safe_text
from swirl_agents.judges.base import Judge, Judgment, as_context, digest, judge_batch


class JudgmentCache:
    """Judgments keyed by (judge id, judge version, state hash, action hash), stored in SQLite.

    Example:
        >>> import tempfile, os
        >>> cache = JudgmentCache(os.path.join(tempfile.mkdtemp(), "judgments.sqlite"))
        >>> len(cache)
        0
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS judgments (judge TEXT, version TEXT, state TEXT, action TEXT, "
            "value TEXT, PRIMARY KEY (judge, version, state, action))"
        )
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def get_many(self, judge: Judge, keys: Sequence[tuple[str, str]]) -> list[Judgment | None]:
        """Cached judgments for ``keys`` = (state hash, action hash) pairs; ``None`` where missing."""
        query = "SELECT value FROM judgments WHERE judge=? AND version=? AND state=? AND action=?"
        out: list[Judgment | None] = []
        for s, a in keys:  # primary-key lookups: microseconds each
            row = self._db.execute(query, (judge.id, judge.version, s, a)).fetchone()
            out.append(Judgment(**json.loads(row[0])) if row else None)
        return out

    def put_many(self, judge: Judge, items: Sequence[tuple[tuple[str, str], Judgment]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?)",
            [(judge.id, judge.version, s, a, safe_text(json.dumps(j.to_dict(), ensure_ascii=False))) for (s, a), j in items],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class CachedJudge:
    """Wrap a judge so every (state, action) is judged at most once, across runs.

    Counts ``hits`` and ``misses`` so callers can see how many model calls were saved.
    """

    def __init__(self, judge: Judge, cache: JudgmentCache):
        self.inner, self.cache = judge, cache
        self.id, self.version = judge.id, judge.version
        self.hits = self.misses = 0

    def judge(self, state: Context | str, action: str) -> Judgment:
        return self.judge_batch([(state, action)])[0]

    def judge_batch(self, pairs: Sequence[tuple[Context | str, str]]) -> list[Judgment]:
        pairs = [(as_context(s), a) for s, a in pairs]
        keys = [(digest(s.render()), digest(a)) for s, a in pairs]
        cached = self.cache.get_many(self.inner, keys)
        todo = [i for i, j in enumerate(cached) if j is None]
        self.hits += len(pairs) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = judge_batch(self.inner, [pairs[i] for i in todo])
            # A fault is not a verdict: it is not kept, so a re-run judges the step again.
            self.cache.put_many(self.inner, [(keys[i], j) for i, j in zip(todo, fresh) if not j.fault])
            for i, j in zip(todo, fresh):
                cached[i] = j
        return cached  # type: ignore[return-value]

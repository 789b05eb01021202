"""Benchmark data: frozen question records and one loader per benchmark.

Example:
    >>> from swirl_env.data import load_questions
    >>> q = load_questions("hotpotqa", split="train", limit=1)[0]
    >>> q.dataset, bool(q.answer), set(q.supporting_titles) <= {p.title for p in q.paragraphs}
    ('hotpotqa', True, True)
"""

from swirl_env.data.loaders import DATASETS, UNANSWERED_SPLITS, load_questions
from swirl_env.data.paths import DataError
from swirl_env.data.types import Hop, Paragraph, Question

__all__ = ["DATASETS", "UNANSWERED_SPLITS", "DataError", "Hop", "Paragraph", "Question", "load_questions"]

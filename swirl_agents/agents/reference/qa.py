"""The reference multi-hop QA agent: search for each supporting article in order, then answer.

The plan comes from the gold annotations (:func:`targets`): with a decomposition (MuSiQue, the
built-in world) one search per hop, querying the hop's sub-question with ``#1``-style references
replaced by the earlier hops' answers; otherwise (HotpotQA) one search per supporting title, the
article named in the question or mentioned by the other first (comparison questions search both
entities). The agent reads what came back: a target whose article (``title: `` in a result) is
already in the context is done; one that was missed is searched once more with a more specific
query (the title and key words of the question); then the agent moves on. It answers with the
gold answer when every target is done, and at the last allowed step whatever it has
(``{"grounded": False}`` when an article is still missing).

Mistakes (see :mod:`swirl_agents.agents.reference` for how they are drawn and annotated):

- ``off_target_query``: search for something not needed, a distractor paragraph's title (or, with
  no distractors, words of the question that name no supporting article).
- ``premature_answer``: answer while evidence is missing, with a wrong guess (the first hop's
  entity, the other compared entity, a distractor title; for yes/no questions the other word).
- ``wrong_answer``: at the answer step, a wrong but plausible span: another entity (or number)
  of the retrieved text, the other compared entity, or the other of yes/no.

Mistake steps use the same wording as correct ones, so only their content gives them away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from swirl_env.data.types import Question
from swirl_env.scoring import normalize_answer, qa_scores
from swirl_env.tools.bm25 import STOPWORDS
from swirl_agents.agents.reference.common import PastStep, ReferenceAgent, Turn, pick

_REFERENCE = re.compile(r"#(\d+)")
_SPAN = re.compile(r"[A-Z][\w'’&.\-]*(?:\s+(?:(?:of|the|de|la|le|von|van|der|for)\s+)*[A-Z0-9][\w'’&.\-]*)*")
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_DATE = re.compile(rf"\b(?:\d{{1,2}} )?{_MONTH}(?: \d{{1,2}},?)? \d{{4}}\b")
_NUMBER = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?![\w,]|\.\d)")
_GENERIC = frozenset("the a an he she it his her in on at this that they their there its after before during "
                     "from with by as for when while however also born".split())
_STOP = STOPWORDS["en"] | {"also", "one", "known", "name", "named", "first", "which", "whose"}

_FIRST_SEARCH = {
    "np": ("To answer this, I first need to know about {need}.",
           "The question hinges on {need}, so I will start by looking it up.",
           "Let me begin by searching for {need}.", "First, I should find the article on {need}."),
    "q": ("To answer this, I first need to find out: {need}", "The question breaks into steps. First: {need}",
          "Let me start with the first part: {need}", "I need to establish this first: {need}"),
}
_NEXT_SEARCH = {
    "np": ("Now I need information on {need}.", "Next, I should look up {need}.",
           "The next piece of evidence is about {need}; let me search for it.", "I still need the article on {need}."),
    "q": ("Next: {need}", "Now I need to find out: {need}", "With that, the next question is: {need}",
          "The remaining part is: {need}"),
}
_RETRY = ("The results do not include the article on {need}; let me try a more specific query.",
          "That search missed {need}. I'll rephrase the query.",
          "Nothing about {need} came back, so I'll search again with more context.")
_ANSWER = ("From the retrieved articles, the answer is {answer}.", "The evidence points to {answer}.",
           "Putting the facts together, the answer is {answer}.", "Based on what I found, the answer is {answer}.")
_UNGROUNDED = ("I could not find every article I needed, but my best answer is {answer}.",
               "I am running out of steps, so I will answer with what I know: {answer}.")


@dataclass(frozen=True)
class Target:
    """One piece of evidence to retrieve: the article expected back and how to ask for it."""

    title: str
    """Title of the paragraph that holds it (``""`` when the data set does not say)."""
    query: str
    retry: str
    need: str
    """What is looked for, as the reasoning names it."""
    answer: str = ""
    """The hop's answer, when known; a target without title is found when it appears in the results."""

    def found(self, results: str, titles: Sequence[str] = ()) -> bool:
        """Whether ``results`` hold the article (or, without a title, the hop's answer); see :func:`retrieved`."""
        if self.title:
            return retrieved(self.title, results, titles)
        return bool(self.answer) and normalize_answer(self.answer) in normalize_answer(results)


def retrieved(title: str, results: str, titles: Sequence[str] = ()) -> bool:
    """Whether a passage of ``results`` (``title: text``, one per line) is the article ``title``.

    The title must start a line: "Florence Foster Jenkins: both are..." inside another passage does
    not count, nor does a passage of a longer known title that starts the same way (``titles``).

    Example:
        >>> retrieved("Menotti", "Opera: by Menotti: x\\nMenotti: Gian Carlo Menotti was a composer.")
        True
        >>> retrieved("Menotti", "Opera: a libretto by Menotti: it premiered in 1958.")
        False
    """
    head = f"{title}: "
    longer = [f"{t}: " for t in titles if len(t) > len(title) and t.startswith(head)]
    return any(line.startswith(head) and not any(line.startswith(h) for h in longer) for line in results.splitlines())


def targets(question: Question) -> list[Target]:
    """The evidence the question needs, in the order a careful agent searches for it.

    Example:
        >>> from swirl_env.data.types import Hop
        >>> q = Question("q", "Where was the director of The Amber Gate born?", ("Tarsk",), "synthqa",
        ...              hops=(Hop("Who directed The Amber Gate?", "Velmora Quint", "The Amber Gate"),
        ...                    Hop("Where was #1 born?", "Tarsk", "Velmora Quint")))
        >>> [t.query for t in targets(q)]
        ['Who directed The Amber Gate', 'Where was Velmora Quint born']
    """
    if question.hops:
        return [_hop_target(question, k) for k in range(len(question.hops))]
    titles = _ordered_titles(question)
    if titles:
        return [_title_target(question, t) for t in titles]
    words = " ".join(_keywords(question.question, (), 4))  # no annotations (Bamboogle): search the question
    return [Target("", words, question.question.rstrip("?"), question.question, question.answer)]


def _hop_target(question: Question, k: int) -> Target:
    hops = question.hops
    text = _REFERENCE.sub(lambda m: _hop_answer(hops, int(m.group(1))), hops[k].question).strip()
    if ">>" in text:  # MuSiQue's composed form: "Van Hook Township >> located in ..."
        subject, _, relation = (part.strip() for part in text.partition(">>"))
        query, need = f"{subject} {relation}", f"the {relation} of {subject}"
    else:
        query, need = text.rstrip("?").strip(), text
    title = hops[k].paragraph_title
    retry = " ".join([title or query, *_keywords(question.question, (title, query), 3)])
    return Target(title, query, retry if retry != query else f"{query} {question.question}", need, hops[k].answer)


def _hop_answer(hops: Sequence, number: int) -> str:
    return hops[number - 1].answer if 1 <= number <= len(hops) and hops[number - 1].answer else f"#{number}"


def _title_target(question: Question, title: str) -> Target:
    query = re.sub(r"[()]", " ", title)
    query = re.sub(r"\s+", " ", query).strip()
    retry = " ".join([query, *_keywords(question.question, (title,), 3)])
    return Target(title, query, retry if retry != query else f"{query} {question.type or 'article'}", title)


def _ordered_titles(question: Question) -> list[str]:
    """Supporting titles, those named in the question first, then those mentioned by no other."""
    titles = list(question.supporting_titles)
    text = {p.title: p.text.lower() for p in question.paragraphs}
    lowered = question.question.lower()

    def key(i_title: tuple[int, str]) -> tuple[bool, bool, int]:
        i, title = i_title
        base = re.sub(r"\s*\(.*\)$", "", title).lower()
        mentioned = any(base in text.get(other, "") for other in titles if other != title)
        return base not in lowered, mentioned, i

    return [t for _, t in sorted(enumerate(titles), key=key)]


def _keywords(text: str, exclude: Sequence[str], n: int) -> list[str]:
    """The ``n`` longest content words of ``text`` not in ``exclude``, in their order of appearance."""
    excluded = {w.lower() for e in exclude for w in re.findall(r"\w+", e)}
    words = [w for w in dict.fromkeys(re.findall(r"[\w'’-]+", text))
             if w.lower() not in _STOP and w.lower() not in excluded and len(w) > 2]
    keep = set(sorted(words, key=len, reverse=True)[:n])
    return [w for w in words if w in keep]


def _names(query: str, title: str) -> bool:
    """Whether ``query`` names the article ``title``: at least half its words (all of a 1–2 word title)."""
    want = set(normalize_answer(title).split())
    hit = len(want & set(normalize_answer(query).split()))
    return bool(want) and (hit == len(want) or (len(want) > 2 and 2 * hit >= len(want)))


def _is_wrong(candidate: str, question: Question) -> bool:
    """Clearly wrong: no exact match and little overlap with any gold answer."""
    if not normalize_answer(candidate):
        return False
    scores = qa_scores(candidate, question.answers)
    return scores["exact_match"] == 0.0 and scores["f1"] < 0.5


class ReferenceQAAgent(ReferenceAgent):
    """Answers multi-hop questions by searching for the gold evidence, with optional mistakes.

    Args:
        questions: the questions it may be asked (with supporting facts or a decomposition).
        mistake_rate: per-step probability of injecting a mistake (0: a perfect agent).
        mistakes: the kinds to inject, a subset of ``("off_target_query", "premature_answer", "wrong_answer")``.
        seed: varies mistakes and wording; use :meth:`with_seed` for one agent per sample.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthQA-v0")
        >>> agent = ReferenceQAAgent(env.unwrapped.questions)
        >>> obs, info = env.reset(seed=0)
        >>> done = False
        >>> while not done:
        ...     obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        ...     done = terminated or truncated
        >>> reward
        1.0
    """

    MISTAKES = ("off_target_query", "premature_answer", "wrong_answer")
    DEFAULT_MAX_STEPS = 5
    kind = "reference-qa"

    def __init__(self, questions: Sequence[Question], *, mistake_rate: float = 0.0,
                 mistakes: Sequence[str] | None = None, seed: int = 0):
        super().__init__(questions, mistake_rate=mistake_rate, mistakes=mistakes, seed=seed)
        self._targets: dict[str, list[Target]] = {}

    def targets(self, question: Question) -> list[Target]:
        if question.id not in self._targets:
            self._targets[question.id] = targets(question)
        return self._targets[question.id]

    def next_turn(self, question: Question, steps: list[PastStep], max_steps: int) -> Turn:
        i = len(steps)
        searches = [s for s in steps if s.tag == "search_query"]
        results = "\n".join(s.result or "" for s in searches)
        queries = [s.action.argument for s in searches]
        plan = self.targets(question)
        missing = [t for t in plan if not t.found(results, [p.title for p in question.paragraphs])]
        pending = next((t for t in missing if queries.count(t.query) + queries.count(t.retry) < 2), None)
        last = i >= max_steps - 1
        if pending is None or last:
            return self._answer(question, i, missing, results, queries, last)
        retry = pending.query in queries
        meta = {"mistake": "", "intent": "retry_search" if retry else "search_support"}
        mistake, wrong = self.choose_mistake(question, i, {
            "off_target_query": lambda: self._off_target(question, i, queries),
            "premature_answer": lambda: self._guess(question, i),
        })
        if mistake == "off_target_query":
            return self._search(question, i, wrong, wrong, not searches, {**meta, "mistake": mistake})
        if mistake == "premature_answer":
            return Turn(self.phrase(question, i, _ANSWER, answer=wrong), "answer", wrong, {**meta, "mistake": mistake})
        if retry:
            return Turn(self.phrase(question, i, _RETRY, need=pending.title or pending.need), "search_query",
                        pending.retry, meta)
        return self._search(question, i, pending.need, pending.query, not searches, meta)

    # -- the kinds of step -----------------------------------------------------------------------

    def _search(self, question: Question, i: int, need: str, query: str, first: bool, meta: dict) -> Turn:
        form = "q" if need.endswith("?") else "np"
        templates = (_FIRST_SEARCH if first else _NEXT_SEARCH)[form]
        return Turn(self.phrase(question, i, templates, need=need), "search_query", query, meta)

    def _answer(self, question: Question, i: int, missing: list[Target], results: str,
                queries: list[str], last: bool) -> Turn:
        meta = {"mistake": "", "intent": "answer", "grounded": not missing}
        mistake, wrong = self.choose_mistake(question, i, {
            "wrong_answer": lambda: self._wrong_answer(question, i, results),
            "off_target_query": lambda: None if last else self._off_target(question, i, queries),
        })
        if mistake == "off_target_query":
            return self._search(question, i, wrong, wrong, not queries, {**meta, "mistake": mistake})
        answer = wrong if mistake == "wrong_answer" else question.answer
        templates = _ANSWER if not missing or mistake else _UNGROUNDED
        return Turn(self.phrase(question, i, templates, answer=answer), "answer", answer, {**meta, "mistake": mistake})

    # -- mistake material ------------------------------------------------------------------------

    def _off_target(self, question: Question, i: int, queries: list[str]) -> str | None:
        """A query for something the question does not need, or None when there is nothing to use."""
        needed = {t.query for t in self.targets(question)} | {t.retry for t in self.targets(question)}
        support = set(question.supporting_titles)
        options = [p.title for p in question.paragraphs if not p.is_supporting and p.title not in support]
        if not options:
            words = _keywords(question.question, [*support, *(h.answer for h in question.hops)], 4)
            options = [" ".join(words[k:k + 2]) for k in range(0, len(words), 2)]
        options = [o for o in dict.fromkeys(options)
                   if o and o not in needed and o not in queries and not any(_names(o, t) for t in support)]
        return pick(options, self.draw(question, i, "off-target")) if options else None

    def _guess(self, question: Question, i: int) -> str | None:
        """A wrong answer given before the evidence: a bridge or compared entity, or a distractor."""
        options = _alternatives(question)
        options += [h.answer for h in question.hops[:-1]] + list(question.supporting_titles)
        options += [p.title for p in question.paragraphs if not p.is_supporting]
        options = [o for o in dict.fromkeys(options) if _is_wrong(o, question)]
        return pick(options[:4], self.draw(question, i, "guess")) if options else None

    def _wrong_answer(self, question: Question, i: int, results: str) -> str | None:
        """A wrong but plausible answer: the other option, or another span of the same kind in the results."""
        options = [o for o in _alternatives(question) if _is_wrong(o, question)]
        if not options:
            options = [s for s in _spans_like(question.answer, results)
                       if s.lower() not in question.question.lower() and _is_wrong(s, question)]
        if not options:
            options = [t for t in question.supporting_titles if _is_wrong(t, question)]
        return pick(options, self.draw(question, i, "wrong-answer")) if options else None


def _spans_like(answer: str, text: str) -> list[str]:
    """Spans of ``text`` shaped like ``answer``: dates, numbers, or names of as many words or more."""
    if _DATE.search(answer):
        return list(dict.fromkeys(_DATE.findall(text)))
    if _NUMBER.fullmatch(answer.strip()):
        return list(dict.fromkeys(_NUMBER.findall(text)))
    spans = [re.split(r"\.\s", s)[0].rstrip(".").strip() for s in _SPAN.findall(text)]  # never across sentences
    spans = list(dict.fromkeys(spans))
    spans = [s for s in spans if len(s) > 2 and not (" " not in s and s.lower() in _STOP | _GENERIC)]
    long = [s for s in spans if " " in s]
    return long if " " in answer.strip() and long else spans


def _alternatives(question: Question) -> list[str]:
    """The answer's natural rivals: the other word of yes/no, the other entity of a comparison."""
    gold = normalize_answer(question.answer)
    if gold in ("yes", "no"):
        return ["no" if gold == "yes" else "yes"]
    entities = [h.paragraph_title for h in question.hops] or list(question.supporting_titles)
    if question.type == "comparison" and any(normalize_answer(e) == gold for e in entities):
        return [e for e in entities if normalize_answer(e) != gold]
    return []

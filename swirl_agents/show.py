"""Look at recorded episodes: every step's action, tool result and judgment, as text, Markdown or an HTML page.

``swirl show --episodes runs/x/episodes.jsonl`` prints the first episode for a terminal: the
question, the gold answers, the episode's answer and score, then each numbered step with what the
tool returned (long results shortened, with a note saying how much was left out) and the judge's
verdict from ``judgments.jsonl`` beside the episodes (or ``--judgments``). ``--first N`` and
``--episode-id ID`` choose episodes; ``--format markdown|html`` and ``--out FILE`` write a report.

**Recorded text is shown, never obeyed.** Actions come from models and tool results from a corpus,
so both can hold anything: HTML, Markdown, ANSI escape codes that recolour or clear a terminal,
carriage returns that overwrite a line, bidirectional overrides that reverse what a reader sees.
Every field goes through :func:`visible` (control and bidi characters become visible ``\\x1b`` /
``\\u202e`` escapes) and then through the format's own escaping: ``html.escape`` for the page (which
also forbids scripts with a Content-Security-Policy), fences longer than any backtick run and
escaped inline text for Markdown.
"""

from __future__ import annotations

import difflib
import html
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swirl_agents.episodes import Episode, Fault, faults_path, read_episodes, read_faults
from swirl_agents.judges import Judgment, read_judgments

FORMATS = ("text", "markdown", "html")

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_MD_INLINE = re.compile(r"([\\`*_\[\]|~#!])")


@dataclass(frozen=True)
class Shown:
    """One episode with what is known about it: its judgments (one per step, if judged) and its recorded faults."""

    episode: Episode
    judgments: tuple[Judgment, ...] | None = None
    """``None`` when no judgments file covers the episode."""
    faults: tuple[Fault, ...] = field(default=())


def visible(text: str) -> str:
    """``text`` with each control and bidirectional-formatting character written out as an escape (newlines, tabs kept).

    A terminal then shows ``\\x1b[2J`` instead of clearing the screen, and ``\\u202e`` instead of
    reversing the rest of the line.

    Example:
        >>> print(visible("red \\x1b[31mRED\\x1b[0m, over\\rwrite, \\u202eevil, \\x00"))
        red \\x1b[31mRED\\x1b[0m, over\\rwrite, \\u202eevil, \\x00
    """
    return _INVISIBLE.sub(_escape_char, text)


def _escape_char(match: re.Match) -> str:
    code = ord(match.group())
    return "\\r" if code == 13 else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shorten(text: str, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``text`` and how many were left out (``limit`` 0: all of it).

    Example:
        >>> shorten("abcdef", 4), shorten("abc", 4), shorten("abcdef", 0)
        (('abcd', 2), ('abc', 0), ('abcdef', 0))
    """
    if not limit or len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def select(episodes: str | os.PathLike, *, judgments: str | os.PathLike | None = None, first: int = 1,
           episode_ids: Sequence[str] = ()) -> list[Shown]:
    """The episodes to show: ``episode_ids`` (in that order) or else the first ``first`` (0: all), with their judgments.

    Judgments come from ``judgments`` or, when that is empty, ``judgments.jsonl`` beside the episodes if it exists.
    An id that is not in the file raises ``KeyError`` naming the closest ids.
    """
    if first < 0:
        raise ValueError(f"--first: expected a count >= 0 (0: all), actual {first}")
    path = Path(episodes)
    if not path.is_file():
        raise FileNotFoundError(f"episode file {path} does not exist (expected the episodes.jsonl of a run, "
                                "e.g. written by swirl generate)")
    wanted = list(dict.fromkeys(episode_ids))
    chosen: dict[str, Episode] = {}
    for ep in read_episodes(path):
        if (ep.episode_id in wanted) if wanted else (not first or len(chosen) < first):
            chosen[ep.episode_id] = ep
        if not wanted and first and len(chosen) >= first:
            break
    missing = [e for e in wanted if e not in chosen]
    if missing:
        known = [ep.episode_id for ep in read_episodes(path)]
        close = difflib.get_close_matches(missing[0], known, n=3)
        raise KeyError(f"episode id {missing[0]!r} is not in {path} ({len(known)} episodes)"
                       + (f"; did you mean {close}?" if close else f"; its first ids are {known[:3]}"))
    verdicts = _judgments_for(path, judgments)
    faults: dict[str, list[Fault]] = {}
    for fault in read_faults(faults_path(path)):
        faults.setdefault(fault.episode_id, []).append(fault)
    order = wanted or list(chosen)
    return [Shown(chosen[e], None if verdicts is None or e not in verdicts else tuple(verdicts[e]),
                  tuple(faults.get(e, ()))) for e in order]


def _judgments_for(episodes: Path, judgments: str | os.PathLike | None) -> dict[str, list[Judgment]] | None:
    if judgments:
        if not Path(judgments).is_file():
            raise FileNotFoundError(f"judgments file {judgments} does not exist (write one with swirl judge, or leave "
                                    "--judgments out to use judgments.jsonl beside the episodes when there is one)")
        return read_judgments(judgments)
    beside = episodes.with_name("judgments.jsonl")
    return read_judgments(beside) if beside.is_file() else None


# --- what is said about an episode and a step, in every format --------------------------------------------


def _summary(item: Shown) -> list[tuple[str, str]]:
    """(field, value) lines describing an episode as a whole."""
    ep = item.episode
    scores = ", ".join(f"{k} {v:.2f}" for k, v in ep.score.items()) or "no score (no gold answer)"
    verdict = "correct" if ep.correct else ("wrong" if ep.answer is not None else "no answer")
    end = "answered" if ep.terminated else ("step limit reached" if ep.truncated else "unfinished")
    lines = [("question", ep.question), ("gold", " | ".join(ep.gold_answers) or "(none)"),
             ("answer", f"{'(none)' if ep.answer is None else ep.answer}  [{verdict}; {scores}; reward {ep.reward:g}]"),
             ("agent", f"{ep.agent}, seed {ep.seed}; {_count(len(ep.steps), 'step')}, {end}")]
    if item.judgments is not None:
        labels = [j.label for j in item.judgments]
        counts = ", ".join(f"{labels.count(x)} {x}" for x in dict.fromkeys(labels))
        judges = ", ".join(dict.fromkeys(j.judge_id for j in item.judgments))
        stale = "" if len(labels) == len(ep.steps) else f" (for {len(ep.steps)} steps: a stale judgments file?)"
        lines.append(("judged", f"{counts or 'no steps'} by {judges or '-'}{stale}"))
    else:
        lines.append(("judged", "not judged (no judgments file; run swirl judge)"))
    for f in item.faults:
        lines.append(("fault", f"step {f.step + 1}: {f.message} ({f.agent})"))
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _step_head(item: Shown, i: int) -> str:
    """``step 2/5 search_query GOOD``: the step's number, kind and verdict."""
    step = item.episode.steps[i]
    kind = step.tool or "malformed"
    verdict = ""
    if item.judgments is not None and i < len(item.judgments):
        j = item.judgments[i]
        verdict = f"  judged {j.label}" + (f" (score {j.score:g})" if j.score not in (0.0, 1.0) else "")
    return f"step {i + 1}/{len(item.episode.steps)}  {kind}{verdict}"


def _step_notes(item: Shown, i: int) -> list[tuple[str, str]]:
    """(field, value) notes of a step: the malformed-step error, an injected mistake, the judge's rationale or fault."""
    step, notes = item.episode.steps[i], []
    if step.error:
        notes.append(("error", step.error))
    if step.meta.get("mistake"):
        notes.append(("mistake", f"{step.meta['mistake']} (injected by the reference agent)"))
    if item.judgments is not None and i < len(item.judgments):
        j = item.judgments[i]
        notes.append(("fault" if j.fault else "judge", f"{j.judge_id}: {j.fault or j.rationale}"))
    return notes


def _more(hidden: int) -> str:
    return f"[{hidden:,} more characters not shown; --max-chars 0 shows all]"


# --- plain text ----------------------------------------------------------------------------------------


def render_text(item: Shown, *, width: int = 100, max_chars: int = 600) -> str:
    """One episode for a terminal: wrapped to ``width`` columns, tool results cut at ``max_chars`` with a note.

    Example:
        >>> from swirl_agents.episodes import Step
        >>> ep = Episode("e1", "q", "SwirlSynthMath-v0", "demo", 0, "What is 2+3?", "Solve.",
        ...              (Step("Add. <math_exp>2+3</math_exp>", "math_exp", "2+3", "5"),
        ...               Step("<answer>5</answer>", "answer", "5", None, reward=1.0)),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False, gold_answers=("5",))
        >>> print(render_text(Shown(ep), width=60))
        === episode e1 (SwirlSynthMath-v0)
        question  What is 2+3?
        gold      5
        answer    5  [correct; exact_match 1.00; reward 1]
        agent     demo, seed 0; 2 steps, answered
        judged    not judged (no judgments file; run swirl judge)
        <BLANKLINE>
        [step 1/2  math_exp]
          action  Add. <math_exp>2+3</math_exp>
          result  5
        <BLANKLINE>
        [step 2/2  answer]
          action  <answer>5</answer>
        <BLANKLINE>
    """
    ep = item.episode
    out = [f"=== episode {visible(ep.episode_id)} ({visible(ep.env_id)})"]
    out += [_wrapped(name, value, width, 0) for name, value in _summary(item)]
    for i, step in enumerate(ep.steps):
        out += ["", f"[{visible(_step_head(item, i))}]", _wrapped("action", step.action, width, 2)]
        if step.result is not None:
            shown, hidden = shorten(step.result, max_chars)
            out.append(_wrapped("result", shown + ("\n" + _more(hidden) if hidden else ""), width, 2))
        out += [_wrapped(name, value, width, 2) for name, value in _step_notes(item, i)]
    return "\n".join(out) + "\n\n"


def _wrapped(name: str, value: str, width: int, indent: int) -> str:
    """``name`` then ``value`` (made visible) wrapped under a hanging indent, keeping the value's own line breaks."""
    first = " " * indent + f"{name:<8}  "
    rest = " " * len(first)
    lines = []
    for k, line in enumerate(visible(value).expandtabs(4).split("\n")):
        lines += textwrap.wrap(line, width=max(width, len(first) + 20), initial_indent=first if k == 0 else rest,
                               subsequent_indent=rest, break_long_words=True, break_on_hyphens=False) or [
            (first if k == 0 else rest).rstrip()]
    return "\n".join(lines)


# --- Markdown ------------------------------------------------------------------------------------------


def md_inline(text: str) -> str:
    """``text`` as one line of Markdown that renders as the same characters (no markup, no HTML, no line breaks).

    Example:
        >>> md_inline("<b>*bold*</b> | [link](x)")
        '&lt;b&gt;\\\\*bold\\\\*&lt;/b&gt; \\\\| \\\\[link\\\\](x)'
    """
    one_line = visible(text).replace("\n", " ")
    return _MD_INLINE.sub(r"\\\1", html.escape(one_line, quote=False))


def md_block(text: str) -> str:
    """``text`` in a fenced code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{visible(text)}\n{fence}"


def render_markdown(item: Shown, *, max_chars: int = 600) -> str:
    """One episode as Markdown: a table of what it was and how it scored, then each step's action, result, verdict."""
    ep = item.episode
    out = [f"## Episode {md_inline(ep.episode_id)} ({md_inline(ep.env_id)})", "", "| | |", "|---|---|"]
    out += [f"| {name} | {md_inline(value)} |" for name, value in _summary(item)]
    for i, step in enumerate(ep.steps):
        out += ["", f"### {md_inline(_step_head(item, i))}", "", md_block(step.action)]
        if step.result is not None:
            shown, hidden = shorten(step.result, max_chars)
            out += ["", "Result:", "", md_block(shown)] + (["", f"*{md_inline(_more(hidden))}*"] if hidden else [])
        out += [""] + [f"- **{name}**: {md_inline(value)}" for name, value in _step_notes(item, i)]
    return "\n".join(out).rstrip("\n") + "\n\n"


# --- HTML ----------------------------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
section { border-top: 2px solid #ccc; margin-top: 2rem; }
dl { display: grid; grid-template-columns: 7rem 1fr; gap: .2rem 1rem; }
dt { color: #666; } dd { margin: 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: .5rem; margin: .3rem 0; }
.step h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
.GOOD { color: #176f2c; } .BAD { color: #b3261e; } .UNPARSEABLE, .fault { color: #8a5a00; }
.note { color: #555; font-size: .9rem; margin: .2rem 0; }
"""


def _h(text: str) -> str:
    return html.escape(visible(text), quote=True)


def render_html_episode(item: Shown, *, max_chars: int = 600) -> str:
    """One episode as an HTML ``<section>`` (every recorded field escaped); long results open in a ``<details>``."""
    ep = item.episode
    out = [f"<section><h2>Episode {_h(ep.episode_id)} <small>({_h(ep.env_id)})</small></h2>", "<dl>"]
    out += [f"<dt>{_h(name)}</dt><dd>{_h(value)}</dd>" for name, value in _summary(item)]
    out.append("</dl>")
    for i, step in enumerate(ep.steps):
        label = item.judgments[i].label if item.judgments is not None and i < len(item.judgments) else ""
        out.append(f'<div class="step"><h3 class="{_h(label)}">{_h(_step_head(item, i))}</h3>')
        out.append(f"<pre>{_h(step.action)}</pre>")
        if step.result is not None:
            shown, hidden = shorten(step.result, max_chars)
            out.append(f"<pre>{_h(shown)}</pre>")
            if hidden:
                rest = _h(step.result[len(shown):])
                out.append(f"<details><summary>{hidden:,} more characters</summary><pre>{rest}</pre></details>")
        out += [f'<p class="note {_h(name)}"><b>{_h(name)}</b>: {_h(value)}</p>'
                for name, value in _step_notes(item, i)]
        out.append("</div>")
    out.append("</section>")
    return "\n".join(out)


def render_html(items: Sequence[Shown], *, title: str = "swirl episodes", max_chars: int = 600) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external resources) showing ``items``."""
    body = "\n".join(render_html_episode(item, max_chars=max_chars) for item in items)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            f"<title>{_h(title)}</title>\n<style>{_CSS}</style></head>\n<body>\n<h1>{_h(title)}</h1>\n"
            f"<p>{_count(len(items), 'episode')}</p>\n{body}\n</body></html>\n")


# --- entry point ---------------------------------------------------------------------------------------


def show(episodes: str | os.PathLike, *, judgments: str | os.PathLike | None = None, first: int = 1,
         episode_ids: Sequence[str] = (), fmt: str = "text", width: int = 100, max_chars: int = 600) -> str:
    """Episodes of ``episodes`` (an episodes JSONL file) rendered for a reader: ``fmt`` is text, markdown or html.

    Args:
        episodes: The episode file (``episodes.jsonl`` of a run).
        judgments: A judgments file; default ``judgments.jsonl`` beside the episodes when it exists.
        first: Show the first N episodes (0: all); ignored when ``episode_ids`` is given.
        episode_ids: Show these episodes, in this order.
        fmt: ``text`` (for a terminal), ``markdown`` or ``html`` (a self-contained page).
        width: Text only: columns to wrap at.
        max_chars: Characters of a tool result shown before it is cut with a note (0: all).

    Example:
        >>> import tempfile, gymnasium as gym, swirl_env
        >>> from swirl_agents.rollout import generate_episodes
        >>> from swirl_agents.agents.factory import make_agent
        >>> env = gym.make("SwirlSynthMath-v0")
        >>> path = Path(tempfile.mkdtemp()) / "episodes.jsonl"
        >>> _ = generate_episodes(env, make_agent("reference", env), out=path, num_questions=1, progress=False)
        >>> print("\\n".join(line for line in show(path).splitlines() if line.startswith(("===", "["))))
        === episode SwirlSynthMath-v0/synthmath-0-0/0 (SwirlSynthMath-v0)
        [step 1/4  math_exp]
        [step 2/4  math_exp]
        [step 3/4  math_exp]
        [step 4/4  answer]
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {FORMATS}, actual {fmt!r}")
    items = select(episodes, judgments=judgments, first=first, episode_ids=episode_ids)
    if fmt == "html":
        return render_html(items, title=f"{Path(episodes).name}: {len(items)} episodes", max_chars=max_chars)
    if fmt == "markdown":
        return "".join(render_markdown(item, max_chars=max_chars) for item in items)
    return "".join(render_text(item, width=width, max_chars=max_chars) for item in items)

"""Properties of the action parser on any text: it never raises, and what it reads is in the step."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swirl_env.actions import ACTION_TAGS, parse_action, truncate_at_action
from swirl_env.fuzz import parser as parser_fuzz
from swirl_env.fuzz.core import FAILURES

TAGGY = st.lists(st.sampled_from(["<", ">", "/", "answer", "search_query", "math_exp", " ", "x", "\n", "é"]),
                 max_size=30).map("".join)


@given(st.one_of(st.text(max_size=200), TAGGY))
def test_any_text_parses_to_an_action_or_a_reason(text):
    action = parse_action(text)
    assert (action.tag is None) == (action.error is not None)
    if action.tag is not None:
        assert action.tag in ACTION_TAGS and action.argument == action.argument.strip() != ""
        assert f"<{action.tag}>" in text and action.argument in text


@given(st.sampled_from(ACTION_TAGS), st.text(max_size=60).filter(lambda s: "<" not in s and s.strip()),
       st.text(max_size=40).filter(lambda s: "<" not in s))
def test_a_well_formed_step_reads_back_its_argument_and_reasoning(tag, argument, reasoning):
    action = parse_action(f"{reasoning}<{tag}>{argument}</{tag}>")
    assert (action.tag, action.argument, action.reasoning, action.error) == (tag, argument.strip(), reasoning.strip(), None)


@given(st.sampled_from(ACTION_TAGS), st.text(max_size=40).filter(lambda s: "<" not in s and s.strip()), st.text(max_size=40))
def test_text_after_the_first_action_is_cut_where_generation_stops(tag, argument, tail):
    step = f"<{tag}>{argument}</{tag}>"
    assert truncate_at_action(step + tail) == step


@given(st.randoms(use_true_random=False))
def test_fuzzed_steps_never_break_the_parser(rng):
    text = parser_fuzz.random_step(rng)
    assert parser_fuzz.check_parser(text, bound=float("inf")).kind not in FAILURES, text


def test_a_whole_step_and_the_same_step_cut_at_its_first_closing_tag_can_read_differently():
    """Known and counted by the fuzzer (differs_when_cut): generation stops at </search_query>,
    but a step read whole finds the <answer> that encloses it."""
    text = "<answer>1</search_query>2</answer>"
    assert parse_action(text).argument == "1</search_query>2"
    assert parse_action(truncate_at_action(text)).error.startswith("The <answer> tag is not closed")

"""Reference agents: gold-guided policies with controllable, annotated mistakes (see :mod:`.common`)."""

from swirl_agents.agents.reference.common import PastStep, ReferenceAgent, draw, read_context
from swirl_agents.agents.reference.math import ReferenceMathAgent
from swirl_agents.agents.reference.qa import ReferenceQAAgent

__all__ = ["PastStep", "ReferenceAgent", "ReferenceMathAgent", "ReferenceQAAgent", "draw", "read_context"]

"""swirl_agents: agents, rollouts, episodes, judges, filters, the step-wise trainer and the ``swirl`` command.

Layout:

- the method: :mod:`~swirl_agents.agents` (the protocol, the factory, transformers, HTTP, reference and replay
  agents), :mod:`~swirl_agents.rollout`, :mod:`~swirl_agents.episodes` (episodes, transitions, faults),
  :mod:`~swirl_agents.judges`, :mod:`~swirl_agents.filters`, :mod:`~swirl_agents.training`,
  :mod:`~swirl_agents.evaluate`, :mod:`~swirl_agents.solve`;
- model input: :mod:`~swirl_agents.prompting` (the one rendering and tokenisation), :mod:`~swirl_agents.zoo`
  (model names to local folders);
- orchestration: :mod:`~swirl_agents.pipeline` (the whole loop, its recipe and report),
  :mod:`~swirl_agents.cli`, :mod:`~swirl_agents.configs`, :mod:`~swirl_agents.runinfo`;
- records on disk: :mod:`~swirl_agents.jsonl`;
- interop: :mod:`~swirl_agents.interop` (Hugging Face datasets and TRL, Minari, ReAct traces, verifiers),
  :mod:`~swirl_agents.serve` (an OpenAI-compatible server);
- test support: :mod:`~swirl_agents.tiny` (tiny tokenizers and models made locally).
"""

__version__ = "0.1.0"

"""Ways in and out of swirl: other systems' trajectories and the tools people train with.

- :mod:`~swirl_agents.interop.hf_datasets`: episodes, judged transitions and training data as Hugging Face datasets
  (Parquet; ``swirl export``), and back;
- :mod:`~swirl_agents.interop.minari`: episodes as Minari datasets;
- :mod:`~swirl_agents.interop.react`: ReAct-format trajectories recorded elsewhere, imported as episodes;
- :mod:`~swirl_agents.interop.verifiers`: swirl envs as verifiers environments.

Each module imports its third-party library only when called, so importing this package needs none of them.
"""

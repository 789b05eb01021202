"""swirl_env: multi-hop QA and math as Gymnasium environments with local, reproducible tools.

Importing the package registers every environment id::

    >>> import gymnasium as gym, swirl_env
    >>> sorted(i for i in gym.registry if i.startswith("Swirl"))[:3]
    ['Swirl2Wiki-v0', 'SwirlBamboogle-v0', 'SwirlBeerQA-v0']
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

_QA = "swirl_env.envs.qa:SwirlQAEnv"
_MATH = "swirl_env.envs.math:SwirlMathEnv"

ENV_IDS = {
    # id: (entry point, dataset)
    "SwirlHotpot-v0": (_QA, "hotpotqa"),
    "SwirlMuSiQue-v0": (_QA, "musique"),
    "SwirlBeerQA-v0": (_QA, "beerqa"),
    "SwirlCofCA-v0": (_QA, "cofca"),
    "SwirlBamboogle-v0": (_QA, "bamboogle"),
    "Swirl2Wiki-v0": (_QA, "2wikimultihopqa"),
    "SwirlSynthQA-v0": (_QA, "synthqa"),
    "SwirlGSM8K-v0": (_MATH, "gsm8k"),
    "SwirlSynthMath-v0": (_MATH, "synthmath"),
}


DEFAULT_KWARGS = {
    "SwirlSynthQA-v0": {"top_k": 2},
    "SwirlSynthMath-v0": {"max_steps": 6},
}
"""The built-in world's own settings: two passages per search (a question's two articles are usually both found)
and six steps for its maths problems (at most five calculations and the answer). Every caller (the CLI, the
pipeline, a user's ``gym.make``) gets the same env."""


def register_envs() -> None:
    """Register every swirl env id with Gymnasium (idempotent; also the package's gymnasium entry point)."""
    for env_id, (entry_point, dataset) in ENV_IDS.items():
        if env_id not in registry:
            # The step limit lives in the env (max_steps), which puts gold info in the final step's info.
            register(id=env_id, entry_point=entry_point, kwargs={"dataset": dataset, **DEFAULT_KWARGS.get(env_id, {})},
                     disable_env_checker=True)


register_envs()

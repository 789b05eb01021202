"""Export swirl episodes as a Minari dataset (offline-RL tooling reads them with ``minari.load_dataset``).

Install with ``pip install "swirl-rl[minari]"``. Each swirl episode becomes one Minari episode:

* ``observations``: the K states the agent saw, then the final context (K + 1 strings, byte for
  byte :meth:`Episode.states` and :meth:`Episode.final_context`);
* ``actions``: the K step texts; ``rewards``, ``terminations``, ``truncations`` per step;
* ``infos``: ``tool``, ``tool_input``, ``result``, ``error`` (strings) and ``seconds`` for every
  observation (the first, after reset, holds empty defaults), the same keys at every step as
  Minari requires;
* per-episode metadata: ``options`` = ``{"question_id": ...}`` (what ``reset`` was given) and the
  swirl ids, answer, score and gold answers.

Observation and action spaces are Gymnasium ``Text`` spaces whose charset is every character in
the data (and length bounds that fit it): Minari serialises ``Text`` and loads it back without
swirl installed, which it cannot do for :class:`swirl_env.spaces.UnicodeText`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import gymnasium as gym

from swirl_agents.episodes import Episode

INFO_KEYS = ("tool", "tool_input", "result", "error", "seconds")


def _import_minari() -> Any:
    try:
        import minari
        import PIL  # noqa: F401  (minari imports it without declaring it)
        import pyarrow  # noqa: F401
        from minari.data_collector import EpisodeBuffer  # noqa: F401  (checks the 0.5 API is there)
    except ImportError as e:
        raise ImportError(f'Minari export needs minari>=0.5, pyarrow and pillow; install them with pip install "swirl-rl[minari]" ({e})') from None
    return minari


@contextlib.contextmanager
def _datasets_root(data_path: str | os.PathLike | None) -> Iterator[None]:
    # Minari finds its datasets folder only through this variable.
    if data_path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(data_path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def text_spaces(episodes: Sequence[Episode]) -> tuple[gym.spaces.Text, gym.spaces.Text]:
    """(observation space, action space): ``Text`` spaces that hold every state and action of ``episodes``."""
    observations = [o for ep in episodes for o in (*ep.states(), ep.final_context())]
    actions = [s.action for ep in episodes for s in ep.steps]
    charset = "".join(sorted(set("".join(observations)) | set("".join(actions)) | {" "}))
    obs_space = gym.spaces.Text(max_length=max(map(len, observations)), min_length=0, charset=charset)
    action_space = gym.spaces.Text(max_length=max(1, *map(len, actions)), min_length=0, charset=charset)
    return obs_space, action_space


def episode_buffer(episode: Episode, index: int) -> Any:
    """One swirl episode as a Minari ``EpisodeBuffer`` with id ``index``."""
    from minari.data_collector import EpisodeBuffer

    k = len(episode.steps)
    infos: dict[str, list] = {key: ["" if key != "seconds" else 0.0] for key in INFO_KEYS}
    for step in episode.steps:
        infos["tool"].append(step.tool)
        infos["tool_input"].append(step.tool_input)
        infos["result"].append(step.result if step.result is not None else "")
        infos["error"].append(step.error)
        infos["seconds"].append(float(step.seconds))
    return EpisodeBuffer(
        id=index,
        seed=episode.seed,
        options={"question_id": episode.question_id},
        observations=[*episode.states(), episode.final_context()],
        actions=[s.action for s in episode.steps],
        rewards=[float(s.reward) for s in episode.steps],
        terminations=[False] * (k - 1) + [episode.terminated],
        truncations=[False] * (k - 1) + [episode.truncated],
        infos=infos,
    )


def _episode_metadata(episode: Episode) -> dict[str, Any]:
    return {
        "swirl_episode_id": episode.episode_id,
        "question_id": episode.question_id,
        "agent": episode.agent,
        "answer": episode.answer,
        "score": dict(episode.score),
        "gold_answers": list(episode.gold_answers),
    }


def export_minari(
    episodes: Iterable[Episode],
    dataset_id: str,
    *,
    env_id: str | None = None,
    data_path: str | os.PathLike | None = None,
    author: str = "swirl",
    description: str | None = None,
) -> Any:
    """Write ``episodes`` as the Minari dataset ``dataset_id`` (arrow format) and return it.

    Args:
        episodes: Swirl episodes (e.g. ``read_episodes(path)``); each needs at least one step.
        dataset_id: Minari id, ``(namespace/)(env_name/)dataset_name-v0``.
        env_id: The swirl env id recorded as the dataset's env spec (default: the episodes' own,
            which must be one id).
        data_path: Minari's datasets folder (default ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        author: Recorded as the dataset author.
        description: Recorded as the dataset description.

    Returns:
        The ``minari.MinariDataset``.

    Example:
        >>> import tempfile
        >>> from swirl_agents.episodes import Step
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+3?", "Be brief.",
        ...              (Step("<answer>5</answer>", "answer", "5", None, reward=1.0),),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False)
        >>> ds = export_minari([ep], "swirl/demo-v0", data_path=tempfile.mkdtemp())
        >>> next(ds.iterate_episodes()).observations[0] == ep.states()[0]
        True
    """
    minari = _import_minari()
    episodes = list(episodes)
    if not episodes or any(not ep.steps for ep in episodes):
        raise ValueError(f"expected episodes with at least one step each, actual {len(episodes)} episodes "
                         f"({sum(not ep.steps for ep in episodes)} empty)")
    env_ids = sorted({ep.env_id for ep in episodes})
    if env_id is None and len(env_ids) > 1:
        raise ValueError(f"expected episodes of one env, actual {env_ids}; pass env_id= or export each env separately")
    env_id = env_id or env_ids[0]
    obs_space, action_space = text_spaces(episodes)
    with _datasets_root(data_path), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(code_permalink|author_email|eval_env|env_spec).*")
        dataset = minari.create_dataset_from_buffers(
            dataset_id,
            [episode_buffer(ep, i) for i, ep in enumerate(episodes)],
            observation_space=obs_space,
            action_space=action_space,
            algorithm_name=", ".join(sorted({ep.agent for ep in episodes})),
            author=author,
            description=description or f"{len(episodes)} swirl episodes of {env_id}",
            data_format="arrow",
            requirements=["swirl"],
        )
    storage = dataset.storage
    if env_id in gym.registry:
        # Recorded after creation: passing the env to Minari would build it (load its data and index).
        storage.update_metadata({"env_spec": gym.spec(env_id).to_json()})
    storage.update_episode_metadata([_episode_metadata(ep) for ep in episodes], range(len(episodes)))
    return dataset

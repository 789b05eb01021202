"""Tiny models and tokenizers made locally: the tokenizer trainer and the model builder.

For tests, examples, benchmarks and the main job's base policy; no download. Needs
``pip install "swirl-rl[train]"``.
"""

from swirl_agents.tiny.model import DEFAULT_MAX_POSITIONS, build_tiny_model, make_tiny_policy, script_model
from swirl_agents.tiny.tokenizer import BOS, EOS, PAD, TAG_TOKENS, train_tokenizer

__all__ = ["BOS", "DEFAULT_MAX_POSITIONS", "EOS", "PAD", "TAG_TOKENS", "build_tiny_model", "make_tiny_policy",
           "script_model", "train_tokenizer"]

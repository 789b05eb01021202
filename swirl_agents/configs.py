"""Config dataclasses become command-line flags: one documented field, one flag.

Each field's help text is the one-line docstring written under it, read from the source, so the
docs and ``--help`` never drift apart.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """Map each field of dataclass ``cls`` (and its bases) to the docstring written under it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(inner type, is optional) for ``X | None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, defaults: Any = None, prefix: str = "",
                            container: Any = None) -> None:
    """Add one ``--flag`` per field of ``cls`` to ``parser``; a nested config's fields get ``--name.field`` flags.

    ``defaults`` is the instance whose values are shown and used as defaults (a nested config's own default,
    e.g. the pipeline's SFT learning rate rather than the trainer's). Fields marked
    ``metadata={"nested": False}`` are left out of nested groups (the outer config sets them).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    target = container or parser
    nested = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_") or (prefix and f.metadata.get("nested") is False):
            continue
        tp, optional = _unwrap(hints[f.name])
        default = _default(f, defaults)
        if dataclasses.is_dataclass(tp) and f.metadata.get("flatten"):
            # The held config's flags without a prefix (``swirl compare --envs``), minus what the holder sets itself.
            own = {g.name for g in dataclasses.fields(cls)} | set(f.metadata.get("hide", ()))
            _add_flattened(parser, tp, default, prefix, target, skip=own)
            continue
        if dataclasses.is_dataclass(tp):
            nested.append((f, tp, default))
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        dest = _dest(prefix, f.name)
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".replace("%", "%%")  # argparse %-formats help
        origin = typing.get_origin(tp)
        kw: dict[str, Any] = {"dest": dest, "default": default, "help": help_text, "metavar": f.name.upper()}
        if tp is bool:
            kw.pop("metavar")
            target.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif origin is typing.Literal:
            target.add_argument(flag, choices=typing.get_args(tp), **{**kw, "metavar": None})
        elif origin in (tuple, list):
            target.add_argument(flag, nargs="*", type=typing.get_args(tp)[0], **kw)
        elif origin is dict:
            target.add_argument(flag, type=_json_object, **{**kw, "help": help_text + " (JSON)"})
        else:
            target.add_argument(flag, type=tp, **kw)
    for f, tp, default in nested:
        title = f"{f.name} ({docs.get(f.name, '').rstrip('.')})" if docs.get(f.name) else f.name
        group = parser.add_argument_group(title, f"--{f.name}.* flags")
        add_dataclass_arguments(parser, tp, defaults=default, prefix=f"{prefix}{f.name}.", container=group)


def _add_flattened(parser: argparse.ArgumentParser, cls: type, defaults: Any, prefix: str, target: Any,
                   skip: set[str]) -> None:
    """Add ``cls``'s flags at the holder's level, leaving out the fields named in ``skip``."""
    sub = argparse.ArgumentParser(add_help=False)
    add_dataclass_arguments(sub, cls, defaults=defaults, prefix=prefix)
    for group in sub._action_groups:  # re-home the flags (and nested groups) onto the holder's parser
        dest = target if group.title in ("positional arguments", "options", "optional arguments") else \
            parser.add_argument_group(group.title, group.description)
        for action in group._group_actions:
            if action.dest.split("__")[0] in skip and "__" not in action.dest:
                continue
            dest._add_action(action)


def from_namespace(cls: type[T], ns: argparse.Namespace, *, defaults: Any = None, prefix: str = "") -> T:
    """Build ``cls`` from the parsed flags (lists become tuples where the field is a tuple; nested configs recursively)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap(hints[f.name])
        if dataclasses.is_dataclass(tp) and f.metadata.get("flatten"):
            held = _default(f, defaults)
            skip = {g.name for g in dataclasses.fields(cls)} | set(f.metadata.get("hide", ()))
            inner = from_namespace(tp, ns, defaults=held, prefix=prefix)
            values[f.name] = dataclasses.replace(inner, **{k: getattr(held, k) for k in skip if hasattr(held, k)})
            continue
        if dataclasses.is_dataclass(tp):
            values[f.name] = from_namespace(tp, ns, defaults=_default(f, defaults), prefix=f"{prefix}{f.name}.")
            continue
        dest = _dest(prefix, f.name)
        if not hasattr(ns, dest):
            if defaults is not None:
                values[f.name] = getattr(defaults, f.name)
            continue
        value = getattr(ns, dest)
        if isinstance(value, list) and typing.get_origin(tp) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _dest(prefix: str, name: str) -> str:
    return (prefix + name).replace(".", "__")


def _default(f: dataclasses.Field, defaults: Any) -> Any:
    if defaults is not None:
        return getattr(defaults, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, actual {text[:60]!r} ({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, actual {type(value).__name__}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))

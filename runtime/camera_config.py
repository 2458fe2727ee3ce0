"""`edgeclf camera --config camera.yaml`: every camera option as a key of one YAML file.

The definition is the `camera` command's own options: each one is a key (its long flag without the
dashes, `-` as `_`: `--top-k` is `top_k`; the MODEL argument is `model`), so an option added to the
command is a config key with no table to update here. The file's values fill the command's defaults
(click's default_map), so a flag given on the command line overrides the file. Unknown keys are
errors naming the closest valid key; values are converted and checked by the option's own type.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import click
import yaml

from edgeclf.runtime.errors import UserError

NOT_KEYS = ("config_file", "print_config", "help")  # options about the config itself


class CameraConfigError(UserError, ValueError):
    """An invalid camera config file; the message names the file, the key, the rule and the fix."""


class _BadConfig(click.ClickException):
    exit_code = 2  # bad input, as edgeclf's other one-line errors


def config_key(param: click.Parameter) -> str:
    """The YAML key of one of the command's parameters."""
    if isinstance(param, click.Argument):
        return (param.metavar or param.name or "").lower().rstrip(".")
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return (longs[0][2:] if longs else param.name or "").replace("-", "_")


def config_params(command: click.Command, ctx: click.Context | None = None) -> dict[str, click.Parameter]:
    """Key -> parameter, for every parameter of `command` that the config file may set, in --help order."""
    params = command.get_params(ctx) if ctx is not None else command.params
    return {config_key(p): p for p in params if p.expose_value and p.name not in NOT_KEYS and config_key(p)}


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(valid))}."


def read_config(path: str | Path, command: click.Command, ctx: click.Context) -> dict[str, Any]:
    """The file's settings as {parameter name: value}, each converted by its option's type.

    Raises:
        CameraConfigError: unreadable file, not YAML, not a mapping, an unknown key or a bad value.
    """
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CameraConfigError(f"{path}: cannot read the camera config ({exc.strerror}). Check the --config path; "
                                "`edgeclf camera MODEL --print-config > camera.yaml` writes one.") from exc
    except yaml.YAMLError as exc:
        problem = str(exc).replace("\n", " ")
        raise CameraConfigError(f"{path}: not valid YAML ({problem}). Fix the file or pass the options as flags.") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CameraConfigError(f"{path}: expected a mapping of camera options (e.g. `source: 0`); received "
                                f"{type(values).__name__}. Write one key per option, as --print-config does.")
    known = config_params(command, ctx)
    settings: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key)
        param = known.get(key) or known.get(key.replace("-", "_"))
        if param is None:
            raise CameraConfigError(f"{path}: unknown key {key!r}.{_suggest(key, list(known))}")
        if value is None:
            continue  # as if absent: the option's default
        if getattr(param, "multiple", False) and not isinstance(value, list):
            value = [value]
        try:
            param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise CameraConfigError(f"{path}: {key}: {exc.format_message()} Fix the value in the file.") from exc
        settings[param.name] = value
    return settings


def load_into(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback of --config (an eager option): puts the file's values into the context's default_map,
    so that every option still parsed takes the file's value unless its flag is given."""
    if value is None or ctx.resilient_parsing:
        return value
    try:
        settings = read_config(value, ctx.command, ctx)
    except CameraConfigError as exc:
        raise _BadConfig(str(exc)) from exc
    ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


def effective_config(ctx: click.Context) -> dict[str, Any]:
    """{key: value} of every config key as this run resolved it (file, flags and defaults together)."""
    result: dict[str, Any] = {}
    for key, param in config_params(ctx.command, ctx).items():
        value = ctx.params.get(param.name)
        result[key] = list(value) if isinstance(value, tuple) else value
    return result


def to_yaml(settings: dict[str, Any]) -> str:
    return yaml.safe_dump(settings, sort_keys=False, default_flow_style=False)

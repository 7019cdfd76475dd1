"""Configuration: `load(path)` is the only entry point; it returns a frozen Config or raises ConfigError.

Every problem found is reported at once, each as `FILE:LINE: message`; warnings (allowed, but worth a
look) come from `load_with_warnings`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from authproxy.config.build import build
from authproxy.config.fields import Invalid, Report
from authproxy.config.model import NO_OVERRIDES, Config, Overrides
from authproxy.config.source import parse
from authproxy.errors import ConfigError, Problem

__all__ = [
    "PRESET_DIR",
    "Config",
    "ConfigError",
    "Overrides",
    "Problem",
    "load",
    "load_text",
    "load_text_with_warnings",
    "load_with_warnings",
]

PRESET_DIR = str(Path(__file__).resolve().parent.parent / "policy" / "presets")

StrPath = str | os.PathLike[str]


def load(path: StrPath, env: Mapping[str, str] | None = None) -> Config:
    """Read, check and build the config file at `path`; `${VAR}` come from `env` (default: os.environ)."""
    config, _ = load_with_warnings(path, env)
    return config


def load_with_warnings(
    path: StrPath,
    env: Mapping[str, str] | None = None,
    *,
    preset_dir: StrPath | None = None,
    overrides: Overrides = NO_OVERRIDES,
) -> tuple[Config, list[Problem]]:
    """As `load`, also returning the warnings, sorted; `preset_dir` replaces the packaged presets (tests);
    `overrides` are command-line values, checked with the file so an upstream given there satisfies it."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise ConfigError(
            [Problem(file, 1, f"cannot read the configuration: {err.strerror or err}")]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError([Problem(file, line, "the file is not UTF-8 text")]) from None
    return load_text_with_warnings(text, file, env, preset_dir=preset_dir, overrides=overrides)


def load_text(
    text: str, path: str, env: Mapping[str, str] | None = None, *, preset_dir: StrPath | None = None
) -> Config:
    """Build from YAML text as if read from `path` (relative key files resolve against its directory)."""
    config, _ = load_text_with_warnings(text, path, env, preset_dir=preset_dir)
    return config


def load_text_with_warnings(
    text: str,
    path: str,
    env: Mapping[str, str] | None = None,
    *,
    preset_dir: StrPath | None = None,
    overrides: Overrides = NO_OVERRIDES,
) -> tuple[Config, list[Problem]]:
    environ = os.environ if env is None else env
    report = Report(path)
    root, problems = parse(text, path, environ)
    report.errors.extend(problems)
    config = None
    if root is not None:
        presets = os.fspath(preset_dir) if preset_dir is not None else PRESET_DIR
        with contextlib.suppress(Invalid):  # reported: every problem is in report.errors
            config = build(root, path, report, preset_dir=presets, env=environ, overrides=overrides)
    if config is None or report.errors:
        raise ConfigError(report.errors)
    return config, sorted(report.warnings)

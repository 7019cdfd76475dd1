"""Config files for the loader's unit tests: written into a scratch directory, loaded, and their problems
read as `config.yaml:LINE: message`; and a directory of real key files to name in them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from authproxy.config import load_with_warnings
from authproxy.config.model import Config
from authproxy.errors import ConfigError


@dataclass
class ConfigDir:
    """A config file written into a scratch directory that is also the working directory, so every
    problem reads `config.yaml:LINE: ...` and relative key paths read as written."""

    path: Path
    preset_dir: Path | None = None

    def write(self, text: str, name: str = "config.yaml") -> str:
        (self.path / name).write_text(textwrap.dedent(text))
        return name

    def load(self, text: str, env: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
        name = self.write(text)
        config, warnings = load_with_warnings(name, {} if env is None else env, preset_dir=self.preset_dir)
        return config, [str(w) for w in warnings]

    def config(self, text: str, env: Mapping[str, str] | None = None) -> Config:
        return self.load(text, env)[0]

    def warnings(self, text: str, env: Mapping[str, str] | None = None) -> list[str]:
        return self.load(text, env)[1]

    def errors(self, text: str, env: Mapping[str, str] | None = None) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            self.load(text, env)
        return [str(p) for p in caught.value.problems]


@dataclass(frozen=True)
class KeyFiles:
    """Public PEMs (and one private PEM) in a directory of their own."""

    dir: Path

    def copy_to(self, target: Path, *names: str) -> None:
        for name in names:
            (target / name).write_bytes((self.dir / name).read_bytes())

"""Every broken config in tests/data/config/ reports exactly the lines of its sibling `.expected` file."""

from __future__ import annotations

from pathlib import Path

import pytest

from authproxy.config import load
from authproxy.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "config"
CASES = sorted(DATA.glob("*.yaml"))


def test_data_directory_has_cases() -> None:
    assert len(CASES) >= 3
    assert all(case.with_suffix(".expected").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_config_reports_the_expected_lines(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)  # problems then name the file as given: relative
    with pytest.raises(ConfigError) as caught:
        load(case.name, {})
    expected = case.with_suffix(".expected").read_text().splitlines()
    assert [str(p) for p in caught.value.problems] == expected

"""How many workers `authproxy serve` starts by default: $AUTHPROXY_WORKERS, else the CPUs this process may
use (affinity, capped by a cgroup v2 or v1 quota, rounded up), 1 when it cannot tell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authproxy.serve.workers import WORKERS_ENV, available_cpus, cgroup_cpu_limit, default_workers


def cgroup_tree(root: Path, files: dict[str, str], own: str = "0::/\n") -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    listing = root / "self-cgroup"
    listing.write_text(own)
    return listing


@pytest.mark.parametrize(
    ("files", "own", "limit"),
    [
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),
        ({"pod/app/cpu.max": "50000 100000\n", "cpu.max": "max 100000\n"}, "0::/pod/app\n", 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu:/\n", None),
        (
            {"cpu,cpuacct/x/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/x/cpu.cfs_period_us": "100000\n"},
            "4:cpu,cpuacct:/x\n0::/\n",
            3.0,
        ),
        ({}, "0::/\n", None),
    ],
    ids=["v2-unlimited", "v2-quota", "v2-own-cgroup", "v1-unlimited", "v1-quota", "no-cgroup"],
)
def test_cgroup_cpu_limit_reads_the_quota(
    tmp_path: Path, files: dict[str, str], own: str, limit: float | None
) -> None:
    listing = cgroup_tree(tmp_path, files, own)
    assert cgroup_cpu_limit(tmp_path, listing) == limit


def test_malformed_cgroup_quota_is_an_error_not_a_guess(tmp_path: Path) -> None:
    listing = cgroup_tree(tmp_path, {"cpu.max": "lots 100000\n"})
    with pytest.raises(ValueError):
        cgroup_cpu_limit(tmp_path, listing)


def test_available_cpus_is_at_least_one_and_at_most_the_affinity() -> None:
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_workers_default_to_the_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert default_workers() == available_cpus()


def test_workers_environment_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_bad_workers_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(WORKERS_ENV, raw)
    with pytest.raises(ValueError, match=WORKERS_ENV):
        default_workers()

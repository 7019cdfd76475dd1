"""The shipped alert rules and dashboard, checked with Prometheus' own tool: `promtool check rules`, and
`promtool test rules` cases proving each alert fires on the series it is written for and stays quiet on
healthy ones. The dashboard's structure is checked here; that every query returns data from a real proxy
is tests/integration/test_monitoring_live.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "helm" / "authproxy" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"
ALERT_TESTS = Path(__file__).parent / "monitoring" / "alerts_test.yaml"

Run = Callable[..., CompletedProcess[str]]


@pytest.fixture(scope="module")
def promtool(unavailable: Callable[[str], NoReturn]) -> str:
    """From `make tools` (scripts/install-tools.sh unpacks Debian's prometheus package into .tools)."""
    found = shutil.which("promtool") or shutil.which("promtool", path=str(REPO / ".tools" / "bin"))
    if found is None:
        unavailable("`promtool` is not on PATH or in .tools/bin; run `make tools`")
    return found


def test_alert_rules_pass_promtool_check(promtool: str, run_tool: Run) -> None:
    result = run_tool([promtool, "check", "rules", str(RULES)])
    assert "SUCCESS: 7 rules found" in result.stdout


def test_each_alert_fires_on_its_case_and_not_on_healthy_series(promtool: str, run_tool: Run) -> None:
    result = run_tool([promtool, "test", "rules", str(ALERT_TESTS)], check=False)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    tested = {
        line.split(":", 1)[1].strip() for line in ALERT_TESTS.read_text().splitlines() if "alertname:" in line
    }
    assert tested == {
        "AuthproxyDenialSpike",
        "AuthproxyKeySourceFailing",
        "AuthproxyKeySourceNotReady",
        "AuthproxyReloadFailing",
        "AuthproxyShadowDivergence",
        "AuthproxyUpstreamDivergence",
        "AuthproxyUpstreamErrors",
    }


def test_the_deploy_folder_links_to_the_chart_files() -> None:
    assert (REPO / "deploy" / "grafana" / "authproxy-dashboard.json").resolve() == DASHBOARD
    assert (REPO / "deploy" / "prometheus" / "authproxy-rules.yaml").resolve() == RULES


def test_dashboard_panels_are_unique_laid_out_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert variables == ["datasource", "job", "instance"]
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps another panel"
                cells.add((x, y))
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job", instance=~"$instance"' in target["expr"], panel["title"]
    titles = " ".join(panel["title"] for panel in panels).lower()
    for topic in (
        "decision",
        "denials by reason",
        "denials by route",
        "latency",
        "decision time",
        "upstream errors",
        "in flight",
        "websockets",
        "key refreshes",
        "reloads",
        "divergence",
    ):
        assert topic in titles

"""`--shadow FILE` for `authproxy explain` and `authproxy test`: the same requests decided by a second
policy (the file `policy.shadow` names, in the same form), and the requests whose status differs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence

from authproxy.cli.offline import Explained
from authproxy.cli.policy_cases import CaseResult
from authproxy.config import PRESET_DIR
from authproxy.config.mcp import endpoint_routes
from authproxy.config.model import Config
from authproxy.config.trial import load_shadow

__all__ = ["add_shadow_arg", "differences", "report", "shadow_config"]


def shadow_config(config: Config, file: str) -> Config:
    """`config` deciding by the policy in `file` (its MCP endpoints' routes added, as at load).
    Raises ConfigError."""
    policy = endpoint_routes(load_shadow(file, PRESET_DIR, os.environ), config.mcp)
    return dataclasses.replace(config, policy=policy)


def add_shadow_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shadow",
        metavar="FILE",
        help="a second policy (in the form policy.shadow names) deciding the same requests: shows where "
        "the status differs",
    )


def report(explained: Explained, shadow: Explained | None, file: str | None, *, as_json: bool) -> str:
    """`authproxy explain`'s output: the report, and with a shadow its answer and whether the status differs
    (in JSON, the document's `shadow` object)."""
    said = None
    if shadow is not None:
        differs = shadow.status != explained.status
        said = {"file": file, "status": shadow.status, "error": shadow.decision.error, "differs": differs}
    if as_json:
        document = explained.document()
        if said is not None:
            document["shadow"] = said
        return json.dumps(document, indent=2)
    if said is None or shadow is None:
        return explained.text()
    same = "DIFFERS" if said["differs"] else "the same status"
    return f"{explained.text()}\nshadow {file}: {shadow.status} {shadow.decision.error or 'allowed'} ({same})"


def differences(enforced: Sequence[CaseResult], shadow: Sequence[CaseResult], file: str) -> list[str]:
    """A title line and a table of the cases whose status differs under the two policies."""
    rows = [
        (ours.case.name, f"{ours.case.method} {ours.case.target}", _said(ours), _said(theirs))
        for ours, theirs in zip(enforced, shadow, strict=True)
        if ours.status != theirs.status
    ]
    title = f"shadow {file}: {len(rows)} case(s) answered with another status"
    if not rows:
        return [title]
    table = [("case", "request", "enforced", "shadow"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return [
        title,
        *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table),
    ]


def _said(result: CaseResult) -> str:
    return f"{result.status} {result.error}" if result.error else str(result.status)

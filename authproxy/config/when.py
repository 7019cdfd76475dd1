"""`when: <CEL expression>` on a route value or an MCP tool rule: compiled and type-checked at load, located
in its file, so a bad condition fails `authproxy check` as FILE:LINE instead of a request.
"""

from __future__ import annotations

from authproxy.config.conditions import Condition
from authproxy.config.fields import Report, read_str
from authproxy.config.source import Node
from authproxy.standards.cel import Kind, compile_expression

__all__ = ["read_when"]


def read_when(report: Report, label: str, node: Node, kind: Kind) -> Condition:
    """The `when` value at `node`; Invalid after reporting a condition that does not compile."""
    source = read_str(report, label, node)
    try:
        expression = compile_expression(source, kind)
    except ValueError as bad:
        raise report.invalid(node.line, f"{label}: {bad}") from None
    return Condition(expression, report.file, node.line)

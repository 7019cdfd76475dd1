"""docs/configuration.md checked against the config readers, so the reference cannot drift from the code.

No list of keys lives here. Every mapping of the config is read by `fields.read_section(..., known,
required)`, which is also what refuses unknown keys; the test loads each YAML example of the page with that
function wrapped and records what each call knew. From that:
- every `read_section` call with known keys in authproxy/config is reached by an example (a new section
  without an example fails);
- the reference rows name exactly the keys the readers know, and call exactly the required ones `required`;
- every example loads without a problem, and sets every key the reference gives a default or example for;
- a default written as `VALUE` is the default: the example with the key set to VALUE builds the same Config
  as the example with the key left out;
- an example written as `key: VALUE` loads when it replaces the key in the page's example.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm

import authproxy.config
from authproxy.config import fields, load_text_with_warnings
from authproxy.config.fields import Report, Section
from authproxy.config.model import Config
from authproxy.config.source import Node
from authproxy.errors import ConfigError
from tests.rigs.certs import new_authority

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
PACKAGE = Path(authproxy.config.__file__).parent
CONFIG_NAME = "authproxy.yaml"
_ROW = re.compile(r"\|\s*`([^`]+)`\s*\|")
_CODE = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class Row:
    key: str  # normalised: `<route>` read as `<>`
    line: int
    default: str
    example: str


@dataclass(frozen=True)
class Example:
    line: int  # the page's line of the block's first YAML line
    text: str


@dataclass(frozen=True)
class Seen:
    """One `read_section` call while an example loaded: the section's path and what the reader knew."""

    path: str  # normalised: list items as `[]`, user-named map keys as `.<>`
    known: tuple[str, ...]
    required: tuple[str, ...]
    key_lines: dict[str, int]  # the keys the example set -> their line in the example
    site: tuple[str, str]  # (module, function) of the call


@dataclass
class Reading:
    rows: dict[str, Row]
    examples: list[Example]
    seen: list[list[Seen]]  # per example
    directory: Path
    problems: list[str] = field(default_factory=list)

    def load(self, text: str) -> Config:
        config, _ = load_text_with_warnings(text, str(self.directory / CONFIG_NAME), {})
        return config

    def known(self) -> dict[str, Seen]:
        return {_join(s.path, k): s for seen in self.seen for s in seen for k in s.known}

    def place(self, key: str) -> tuple[int, int] | None:
        """(example index, line in it) of the first example that sets `key`."""
        for index, seen in enumerate(self.seen):
            for s in seen:
                name = key.rpartition(".")[2]
                if _join(s.path, name) == key and name in s.key_lines:
                    return index, s.key_lines[name]
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def schema_path(label: str) -> str:
    """A reader's label (`policy.routes["GET /a"].owner`, `jwt.keys[0]`) as the reference writes it."""
    label = re.sub(r"\[\d+\]", "[]", label)
    return re.sub(r"\[(\"[^\"]*\"|'[^']*')\]", ".<>", label)


def read_page(text: str) -> tuple[dict[str, Row], list[Example]]:
    rows: dict[str, Row] = {}
    examples: list[Example] = []
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if block is not None:
            if line.startswith("```"):
                examples.append(Example(start, "\n".join(block) + "\n"))
                block = None
            else:
                block.append(line)
        elif line.startswith("```yaml"):
            block, start = [], number + 1
        elif _ROW.match(line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            assert len(cells) == 5, (
                f"{DOC.name}:{number}: a reference row has 5 cells: key|type|default|example|meaning"
            )
            key = re.sub(r"<[^>]*>", "<>", cells[0].strip("`"))
            assert key not in rows, (
                f"{DOC.name}:{number}: {key} is already described at line {rows[key].line}"
            )
            rows[key] = Row(key, number, cells[2], cells[3])
    return rows, examples


class _SectionCalls(ast.NodeVisitor):
    """(module, function) of each `read_section` call (a map of keys the author names is `read_map`)."""

    def __init__(self, module: str) -> None:
        self.module, self.function = module, ""
        self.sites: set[tuple[str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    def visit_Call(self, node: ast.Call) -> None:
        if _named(node.func, "read_section"):
            self.sites.add((self.module, self.function))
        self.generic_visit(node)


def _named(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def section_sites() -> set[tuple[str, str]]:
    """Every section reader in authproxy/config; fields.py's read_preset_file reads authproxy's own files."""
    sites: set[tuple[str, str]] = set()
    for module in PACKAGE.glob("*.py"):
        if module.stem != "fields":
            calls = _SectionCalls(module.stem)
            calls.visit(ast.parse(module.read_text(encoding="utf-8")))
            sites |= calls.sites
    return sites


def _files(directory: Path) -> None:
    """The files the page's examples name, relative to the config file."""
    for sub in ("secrets", "keys", "tls", "upstream-tls"):
        (directory / sub).mkdir()
    (directory / "secrets/jwt-secret").write_text("an HMAC secret of at least 32 bytes, for HS256\n")
    (directory / "policy-next.yaml").write_text("preset: agentos\n")  # the example's policy.shadow
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    (directory / "keys/public.pem").write_bytes(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = json.loads(RSAAlgorithm.to_jwk(key)) | {"kid": "2026-01", "use": "sig"}
    (directory / "keys/jwks.json").write_text(json.dumps({"keys": [jwk]}))
    ca = new_authority(directory / "pki")
    server, client = ca.issue(directory / "pki", "proxy"), ca.issue(directory / "pki", "svc", server=False)
    for target, source in {
        "tls/tls.crt": server.cert_file,
        "tls/tls.key": server.key_file,
        "tls/ca.crt": ca.cert_file,
        "upstream-tls/ca.crt": ca.cert_file,
        "upstream-tls/tls.crt": client.cert_file,
        "upstream-tls/tls.key": client.key_file,
    }.items():
        (directory / target).write_bytes(source.read_bytes())


@pytest.fixture(scope="module")
def reading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reading]:
    directory = tmp_path_factory.mktemp("reference")
    _files(directory)
    rows, examples = read_page(DOC.read_text(encoding="utf-8"))
    result = Reading(rows, examples, [], directory)
    real = fields.read_section
    current: list[Seen] = []

    def recording(
        report: Report,
        path: str,
        line: int,
        node: Node,
        known: Collection[str],
        required: Collection[str] = (),
    ) -> Section:
        section = real(report, path, line, node, known, required)  # Invalid when no map: nothing to record
        if known and report.file.endswith(CONFIG_NAME):  # not a preset file
            code = sys._getframe(1).f_code  # the reader that called it
            site = (Path(code.co_filename).stem, code.co_name)
            current.append(Seen(schema_path(path), tuple(known), tuple(required), section.key_lines, site))
        return section

    with pytest.MonkeyPatch.context() as patch:
        # Every config module that imported the reader, none named here, so a new module is covered too.
        for module in list(sys.modules.values()):
            if (
                module.__name__.startswith("authproxy.config.")
                and getattr(module, "read_section", None) is real
            ):
                patch.setattr(module, "read_section", recording)
        for example in examples:
            current = []
            try:
                result.load(example.text)
            except ConfigError as bad:
                shifted = [f"{DOC.name}:{p.line + example.line - 1}: {p.message}" for p in bad.problems]
                result.problems.extend(shifted)
            result.seen.append(current)
    yield result


def test_every_example_loads_without_a_problem(reading: Reading) -> None:
    assert reading.examples, f"{DOC.name} has no ```yaml example"
    assert reading.problems == []


def test_every_section_reader_is_reached_by_an_example(reading: Reading) -> None:
    reached = {s.site for seen in reading.seen for s in seen}
    missing = sorted(f"authproxy/config/{m}.py: {f}()" for m, f in section_sites() - reached)
    assert missing == [], f"no example in {DOC.name} reaches these section readers; add one"


def test_the_reference_names_exactly_the_keys_the_readers_know(reading: Reading) -> None:
    known = reading.known()
    undocumented = sorted(set(known) - set(reading.rows))
    unknown = sorted(f"{DOC.name}:{r.line}: {k}" for k, r in reading.rows.items() if k not in known)
    # (keys the config reads that the page does not describe, keys the page describes that no reader knows)
    assert (undocumented, unknown) == ([], [])


def test_required_keys_and_only_those_are_called_required(reading: Reading) -> None:
    required = {_join(s.path, k) for seen in reading.seen for s in seen for k in s.required}
    said = {k for k, row in reading.rows.items() if row.default == "required"}
    # (said to be required but not required by the readers, required but the default column does not say so)
    assert (sorted(said - required), sorted(required - said)) == ([], [])


def _value(cell: str) -> str | None:
    """The YAML of a cell that is one code span (`10s`), or None for prose."""
    found = _CODE.fullmatch(cell)
    return found.group(1) if found else None


def _edit(text: str, line: int, name: str, new: str | None) -> str:
    """The example with the key `name` on `line` set to `new` (`name: value`) or left out (None).

    Its nested lines become comments, and nothing moves, so every other key keeps its line number.
    """
    lines = text.split("\n")
    head = lines[line - 1]
    lead = re.match(r"\s*(- )?", head)
    assert lead is not None
    column = lead.end()
    assert re.match(rf"\"?{re.escape(name)}\"?:", head[column:]), (
        f"write {name} in block style, one key per line, in the example: {head.strip()}"
    )
    assert new is not None or not lead.group(1), f"{name} opens a list item; set another key of it instead"
    end = line
    while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) > column:
        lines[end] = "#"
        end += 1
    lines[line - 1] = head[:column] + new if new is not None else "#"
    return "\n".join(lines)


def _each_row(reading: Reading, column: Callable[[Row], str]) -> Iterator[tuple[Row, str, Example, int]]:
    """(row, its code value, the example that sets the key, the key's line) for rows with a code value."""
    for row in reading.rows.values():
        value = _value(column(row))
        if value is None:
            continue
        place = reading.place(row.key)
        assert place is not None, f"{DOC.name}:{row.line}: no example sets {row.key}; add it to one"
        yield row, value, reading.examples[place[0]], place[1]


def test_documented_defaults_are_the_defaults(reading: Reading) -> None:
    wrong: list[str] = []
    for row, value, example, line in _each_row(reading, lambda r: r.default):
        name = row.key.rpartition(".")[2]
        without = reading.load(_edit(example.text, line, name, None))
        with_default = reading.load(_edit(example.text, line, name, f"{name}: {value}"))
        if without != with_default:
            wrong.append(f"{DOC.name}:{row.line}: {row.key} defaults to something other than {value}")
    assert wrong == []


def test_documented_examples_load(reading: Reading) -> None:
    sections = {s.path for seen in reading.seen for s in seen}
    for row in reading.rows.values():
        if _value(row.example) is None:
            assert row.key in sections, f"{DOC.name}:{row.line}: {row.key} needs an example as `key: value`"
    for row, value, example, line in _each_row(reading, lambda r: r.example):
        name = row.key.rpartition(".")[2]
        assert re.match(rf"\"?{re.escape(name)}\"?:", value), (
            f"{DOC.name}:{row.line}: write the example as {name}: …"
        )
        try:
            reading.load(_edit(example.text, line, name, value))
        except ConfigError as bad:
            pytest.fail(f"{DOC.name}:{row.line}: the example of {row.key} does not load: {bad.problems}")

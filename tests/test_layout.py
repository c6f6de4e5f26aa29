"""The shape of app/ that later work builds on, checked from the source itself.

* The import graph has no cycle, following ``from .x import`` at any depth
  (inside functions too), and no module imports inside a function.
* The queue (app/jobs.py) imports nothing from the rest of the app.
* A provider's field names appear only in its adapter (app/providers/);
  Twilio's webhook fields are read only in the webhook layer; TwiML is
  written only in app/twiml.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
# What we send to AssemblyAI or read back from it, where the name is not also ours.
ASSEMBLYAI_FIELDS = {
    "speech_models",
    "multichannel",
    "speaker_labels",
    "language_detection",
    "webhook_url",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
    "audio_url",
}
# What Twilio's REST API is sent, beyond what the twilio library names itself.
TWILIO_API_FIELDS = {"RequestedChannels", "status_callback", "status_callback_event"}
# The fields of Twilio's inbound webhooks.
TWILIO_WEBHOOK_FIELDS = {
    "AccountSid",
    "CallSid",
    "CallStatus",
    "CallDuration",
    "Direction",
    "Timestamp",
    "RecordingSid",
    "RecordingStatus",
    "RecordingDuration",
    "RecordingChannels",
    "RecordingSource",
    "RecordingStartTime",
    "ErrorCode",
}
WEBHOOK_LAYER = {"app.webhooks", "app.webhook_auth"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (migrations are scripts, not modules)."""
    found = {}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, ast.AST]]:
    """The app modules ``name`` imports, each with the statement that does."""
    package = package_of(name, path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in known:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in known else target), node


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t, _ in imports(name, path, known)} - {name} for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        trail.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_scan_sees_the_package() -> None:
    edges = graph()
    assert {"app", "app.pipeline", "app.jobs", "app.providers.assemblyai"} <= set(edges)
    assert "app.jobs" in edges["app.pipeline"] and "app.clients" in edges["app.pipeline"]
    assert "app.providers" in edges["app.providers.twilio"], "relative imports are followed"


def test_the_import_graph_has_no_cycle() -> None:
    assert find_cycle(graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_inside_a_function() -> None:
    late = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                late += [
                    f"{name}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                ]
    assert late == []


def test_the_queue_imports_nothing_from_the_app() -> None:
    assert graph()["app.jobs"] == set()


def string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    } | {
        keyword.arg
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg
    }


@pytest.mark.parametrize(
    ("fields", "allowed"),
    [
        (ASSEMBLYAI_FIELDS, {"app.providers.assemblyai"}),
        (TWILIO_API_FIELDS, {"app.providers.twilio"}),
        (TWILIO_WEBHOOK_FIELDS, WEBHOOK_LAYER),
    ],
    ids=["assemblyai", "twilio-api", "twilio-webhooks"],
)
def test_provider_fields_stay_in_their_place(fields: set[str], allowed: set[str]) -> None:
    seen = {name: string_constants(path) & fields for name, path in modules().items()}
    assert any(seen[name] for name in allowed), "the scan found none of these fields at all"
    assert {name: found for name, found in seen.items() if found and name not in allowed} == {}


def test_twiml_is_written_only_in_twiml_py() -> None:
    writers = {
        name
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("twilio.twiml")
    }
    assert writers == {"app.twiml"}

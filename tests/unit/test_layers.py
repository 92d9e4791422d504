"""The layering the code relies on (README, "Layout"): dependencies point one way,
services -> streams -> models; models/ stays pure (no event loop, no Kafka, no web); and no
code outside a streams/ module rebinds that module's globals (the Faust adapter's wiring is
per app, streams/kafka.py's ``TransportHooks``, not module state).

Read from the source with ``ast``, imports inside functions included, so a lazy import does
not slip through."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What models/ must never import (top-level package names).
NOT_IN_MODELS = frozenset({"asyncio", "faust", "aiohttp", "aiortc", "aiokafka", "mode",
                           "confluent_kafka"})


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module name) of every import anywhere in ``tree``; for ``from a import
    b`` both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def top_package(module: str) -> str:
    return module.split(".", 1)[0]


def streams_module_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to a streams/ module: ``from streams import kafka [as k]`` and
    ``import streams.kafka as k``; plain ``import streams...`` binds ``streams`` itself."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "streams" and not node.level:
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if top_package(alias.name) == "streams":
                    names.add(alias.asname or "streams")
    return names


def base_name(node: ast.expr) -> str | None:
    """``kafka`` for ``kafka.X`` and ``streams`` for ``streams.kafka.X``."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def foreign_global_writes(source: str) -> list[tuple[int, str]]:
    """(line, target) of every assignment, deletion or ``setattr``/``monkeypatch.setattr``
    to an attribute of a streams/ module in ``source``."""
    tree = ast.parse(source)
    modules = streams_module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            if called in ("setattr", "delattr") and base_name(node.args[0]) in modules:
                found.append((node.lineno, ast.unparse(node)))
        for target in targets:
            for element in written(target):
                if isinstance(element, ast.Attribute) and base_name(element) in modules:
                    found.append((node.lineno, ast.unparse(element)))
    return found


def written(target: ast.expr) -> Iterator[ast.expr]:
    """What an assignment target rebinds or mutates: the elements of a tuple target, and the
    container of a subscript (``kafka.REWINDS[tp] = 0`` mutates ``kafka.REWINDS``)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from written(element)
    elif isinstance(target, (ast.Starred, ast.Subscript)):
        yield from written(target.value)
    else:
        yield target


@pytest.mark.parametrize("path", python_files("streams"), ids=lambda p: p.name)
def test_streams_imports_nothing_from_services(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    wrong = [(line, name) for line, name in imported_modules(tree)
             if top_package(name) == "services"]
    assert wrong == [], f"{path.relative_to(ROOT)} imports services/: {wrong}"


@pytest.mark.parametrize("path", python_files("models"), ids=lambda p: p.name)
def test_models_stay_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    wrong = [(line, name) for line, name in imported_modules(tree)
             if top_package(name) in NOT_IN_MODELS | {"streams", "services"}]
    assert wrong == [], f"{path.relative_to(ROOT)} imports outside the pure layer: {wrong}"


@pytest.mark.parametrize(
    "path", python_files("models", "streams", "services", "tests", "bench"),
    ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_writes_a_streams_module_global(path: Path) -> None:
    # streams/ modules included: none imports itself, so its own globals are not matched.
    assert foreign_global_writes(path.read_text()) == []


def test_streams_kafka_holds_no_mutable_module_state() -> None:
    """streams/kafka.py's module-level names are constants: the per-worker wiring lives in
    a TransportHooks the app carries."""
    tree = ast.parse((ROOT / "streams" / "kafka.py").read_text())
    mutable = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = node.value
            names = [t.id for t in (node.targets if isinstance(node, ast.Assign)
                                    else [node.target]) if isinstance(t, ast.Name)]
            if value is None or isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp,
                                                   ast.ListComp, ast.SetComp)) \
                    or (isinstance(value, ast.Constant) and value.value is None):
                mutable += names  # a container, or a placeholder rebound later
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            mutable += node.names
    assert mutable == []


# The checkers above, on the patterns they must catch (so they cannot pass vacuously).

def test_the_import_check_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    from services.broker import BrokerProbe\n")
    assert {name for _, name in imported_modules(tree)} == {
        "services.broker", "services.broker.BrokerProbe"}


@pytest.mark.parametrize("source", [
    "from streams import kafka\nkafka.FETCH_MAX_WAIT_MS = 10\n",
    "from streams import kafka as k\ndef f():\n    k.INLINE_TOPICS = k.UNPAUSED = frozenset()\n",
    "import streams.kafka\nstreams.kafka.REWINDS = {}\n",
    "from streams import kafka\nkafka.REWINDS[tp] = 0\n",
    "from streams import kafka\na, kafka.BEFORE_COMMIT = 1, None\n",
    "from streams import kafka\ndef t(monkeypatch):\n"
    "    monkeypatch.setattr(kafka, 'UNPAUSED_TOPICS', frozenset())\n",
])
def test_the_global_write_check_catches(source: str) -> None:
    assert foreign_global_writes(source)


def test_the_global_write_check_allows_objects_of_the_module() -> None:
    source = ("from streams import kafka\n"
              "hooks = kafka.TransportHooks()\napp.transport_hooks = hooks\n"
              "hooks.rewinds[0] = 5\n")
    assert foreign_global_writes(source) == []

"""The package layering holds: no import points from a lower package up to a higher one, product code
never imports the benchmarks, and nothing imports the command line (no cli <-> demo cycle).

Read from the source with `ast` (every import, including the ones inside functions), so it runs
without any service.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gridtokenx

SRC = Path(gridtokenx.__file__).parent

# what each lower package may import from the project; everything above them is free to import these
ALLOWED = {
    "core": {"core", "events"},  # the context picks the event bus from settings
    "events": {"core", "events"},
    "ledger": {"core", "events", "ledger"},
    "accounts": {"core", "events", "accounts"},
    "meters": {"core", "events", "accounts", "meters"},
}


def imports() -> Iterator[tuple[str, str]]:
    """(importing module's path under gridtokenx/, imported gridtokenx module) for every import."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "gridtokenx" or name.startswith("gridtokenx."):
                    yield where, name


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_walk_sees_known_imports() -> None:
    found = set(imports())
    assert ("cli.py", "gridtokenx.core.settings") in found
    assert ("readings/pipeline.py", "gridtokenx.meters.facts") in found


def test_lower_packages_import_nothing_above_them() -> None:
    wrong = [
        f"{where} imports {module}"
        for where, module in imports()
        if (package := where.split("/")[0]) in ALLOWED and package_of(module) not in ALLOWED[package]
    ]
    assert wrong == []


def test_product_code_never_imports_the_benchmarks() -> None:
    wrong = [
        f"{where} imports {module}"
        for where, module in imports()
        if package_of(module) == "bench" and not where.startswith(("bench/", "cli.py"))
    ]
    assert wrong == []


def test_nothing_imports_the_command_line() -> None:
    wrong = [f"{where} imports {module}" for where, module in imports() if package_of(module) == "cli"]
    assert wrong == []

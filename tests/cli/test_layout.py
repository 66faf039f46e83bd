"""The CLI's shape, read from its source: a command module parses arguments, calls the library
and prints; it never imports another command module or the entry point, and the library never
starts the CLI (not even from a string handed to another interpreter)."""

from __future__ import annotations

import ast
from pathlib import Path

import conveyor

SRC = Path(conveyor.__file__).parent
CLI = SRC / "cli"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imported_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import a\n\ndef f():\n    from b.c import d\n    import e.f\n")
    assert imported(source) == {"a", "b.c", "b.c.d", "e.f"}


def test_command_modules_import_no_other_command_module_nor_the_entry_point() -> None:
    modules = sorted(CLI.glob("*_cmds.py"))
    assert len(modules) > 10
    offences = {
        path.name: sorted(
            name
            for name in imported(path)
            if name.startswith("conveyor.cli.")
            and (name.split(".")[2].endswith("_cmds") or name.split(".")[2] == "main")
        )
        for path in modules
    }
    assert {name: found for name, found in offences.items() if found} == {}


def test_the_library_never_names_the_cli() -> None:
    """import-linter sees imports; this also catches ``python -c "from conveyor.cli..."``."""
    named = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if CLI not in path.parents and "conveyor.cli" in path.read_text()
    ]
    assert named == []

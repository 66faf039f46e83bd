from __future__ import annotations

import subprocess
import sys

import conveyor


def test_public_api_is_declared() -> None:
    assert conveyor.__all__ == [
        "ConveyorError",
        "__version__",
        "log_artifact",
        "log_metric",
        "log_metrics",
        "log_params",
        "set_tags",
        "start_run",
    ]
    for name in conveyor.__all__:
        assert hasattr(conveyor, name)


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from conveyor.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'numpy', 'pandas', 'sklearn', 'optuna', 'ray', 'starlette', 'rich', 'fsspec',"
        " 'sqlite3', 'yaml', 'blake3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_version_flag(project) -> None:  # type: ignore[no-untyped-def]
    assert conveyor.__version__ in project.ok("--version")

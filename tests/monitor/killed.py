"""A writer killed mid-life: run ``body`` (Python, the folder in ``sys.argv[1]``) in a process of
its own, wait until it has written, and SIGKILL it, as a crash or an OOM kill would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

HEAD = "import sys, time\nfrom pathlib import Path\n"


def killed_after(body: str, folder: Path) -> None:
    code = HEAD + body + "print('written', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()

"""conveyor itself for an image: a wheel of the running conveyor, and the versions of what it
needs to serve, as this environment has them.

conveyor goes into an image as a wheel copied into the build context, not by name from an
index: the index a build sees may hold another project called ``conveyor``, or none, and the
image must run the conveyor that packaged it. The wheel is built from the source tree when
conveyor runs from one (an editable install, a checkout), else made again from the installed
files (what ``pip install`` put in site-packages is a wheel's content).

    >>> pinned_closure(["packaging>=23"], extras=())  # doctest: +SKIP
    ['packaging==24.1']
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from conveyor.deploy.errors import ContainerError

NAME = "conveyor"
_BY_PIP = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}  # written at install time


def build(into: Path) -> Path:
    """A wheel of the running conveyor in folder ``into``."""
    import conveyor

    into.mkdir(parents=True, exist_ok=True)
    source = Path(conveyor.__file__).resolve().parents[2]
    if _is_source(source):
        return _from_source(source, into)
    return _from_installed(into)


def requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of ``wheel`` (extras' lines carry their marker)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        if not names:
            raise ContainerError(f"{wheel} is not a wheel: no .dist-info/METADATA")
        meta = Parser().parsestr(zf.read(names[0]).decode())
    return list(meta.get_all("Requires-Dist") or [])


def pinned_closure(lines: Iterable[str], *, extras: tuple[str, ...]) -> list[str]:
    """``name==version`` for each requirement in ``lines`` that applies (with ``extras``
    requested) and, recursively, for what those need, at the versions this environment has;
    a package this environment lacks is kept as the line asked for it. Sorted by name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    todo = [(Requirement(line), extras) for line in lines]
    while todo:
        req, wanted = todo.pop()
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": e}) for e in (wanted or ("",))
        ):
            continue
        name = canonicalize_name(req.name)
        if name in pins:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pins[name] = str(req)
            continue
        pins[name] = f"{name}=={dist.version}"
        todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return [pins[n] for n in sorted(pins)]


def _is_source(folder: Path) -> bool:
    project = folder / "pyproject.toml"
    return project.is_file() and f'name = "{NAME}"' in project.read_text()


def _from_source(source: Path, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir"]
    done = subprocess.run([*cmd, str(into), str(source)], capture_output=True, text=True)
    built = sorted(into.glob(f"{NAME}-*.whl"))
    if done.returncode != 0 or not built:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ContainerError(
            f"cannot build a wheel of conveyor from {source}: {tail}",
            hint="build one yourself (pip wheel --no-deps .) and pass it with --conveyor-wheel",
        )
    return built[-1]


def _from_installed(into: Path) -> Path:
    """The installed distribution's files (its RECORD's, scripts left out: pip writes them
    again from entry_points.txt) zipped as a wheel, with a RECORD of their hashes."""
    dist = metadata.distribution(NAME)
    files = [f for f in dist.files or [] if not str(f).startswith("..")]
    info = next((f.parent for f in files if f.name == "METADATA"), None)
    if info is None or not files:
        raise ContainerError(
            "cannot make a wheel of conveyor: its installed files are not listed",
            hint="pass a wheel of this version with --conveyor-wheel",
        )
    wheel = into / f"{NAME}-{dist.version}-py3-none-any.whl"
    record: list[str] = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in sorted(files, key=str):
            path = str(item)
            if "__pycache__" in path or (item.parent == info and item.name in _BY_PIP):
                continue
            data = Path(str(item.locate())).read_bytes()
            zf.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel

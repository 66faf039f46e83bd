"""A stage as the engine sees it: plain values, expanded and resolved from ``conveyor.yaml``.

Paths are relative to the project root with forward slashes; params are (file, dotted key)
pairs. These values are what the compiled-pipeline cache stores as JSON, so they hold nothing a
JSON round trip would change.
"""

from __future__ import annotations

from typing import Any, NamedTuple

KINDS = ("outs", "metrics", "plots")


class Out(NamedTuple):
    path: str
    cache: bool = True  # False: the file is committed to git (it is still kept for restores)
    persist: bool = False  # True: not removed before the stage runs
    kind: str = "outs"  # "outs", "metrics" or "plots"


class Stage(NamedTuple):
    name: str
    cmd: tuple[str, ...]
    wdir: str = ""  # "" is the project root
    deps: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # (params file, dotted key)
    outs: tuple[Out, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    frozen: bool = False
    always_changed: bool = False
    desc: str = ""
    line: int = 0  # where conveyor.yaml declares it, for messages
    # (name, amount) from `resources:` (memory in bytes); the Ray executor schedules by them
    resources: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> list[Any]:
        return [
            self.name,
            list(self.cmd),
            self.wdir,
            list(self.deps),
            [list(p) for p in self.params],
            [list(o) for o in self.outs],
            [list(e) for e in self.env],
            self.frozen,
            self.always_changed,
            self.desc,
            self.line,
            [list(r) for r in self.resources],
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Stage:
        name, cmd, wdir, deps, params, outs, env, frozen, always, desc, line, resources = row
        return cls(
            name,
            tuple(cmd),
            wdir,
            tuple(deps),
            tuple((f, k) for f, k in params),
            tuple(Out(*o) for o in outs),
            tuple((k, v) for k, v in env),
            frozen,
            always,
            desc,
            line,
            tuple((k, float(v)) for k, v in resources),
        )


class Plot(NamedTuple):
    """A plot to draw: from top-level ``plots:`` (DVC's shape) or a stage's ``plots:`` entry.

    ``x`` and ``y`` name columns per file; an empty x is the first column (or the row number
    when the file has one column), no y columns is the second column. ``template`` is DVC's
    name: ``confusion`` draws a confusion matrix of x against y, an image file is shown as is,
    anything else draws lines.
    """

    id: str
    files: tuple[str, ...]
    x: dict[str, str]  # file -> column
    y: dict[str, list[str]]  # file -> columns
    template: str = "linear"
    title: str = ""
    x_label: str = ""
    y_label: str = ""

    def to_json(self) -> list[Any]:
        return [self.id, list(self.files), self.x, self.y, *self[4:]]

    @classmethod
    def from_json(cls, row: list[Any]) -> Plot:
        pid, files, x, y, *rest = row
        return cls(pid, tuple(files), dict(x), {k: list(v) for k, v in y.items()}, *rest)


class Meta(NamedTuple):
    """What a dep or out held: its hash (``oid`` or ``oid.tree``), size and file count."""

    hash: str
    size: int
    nfiles: int

    @property
    def is_tree(self) -> bool:
        return self.hash.endswith(".tree")

    @property
    def oid(self) -> str:
        return self.hash.removesuffix(".tree")

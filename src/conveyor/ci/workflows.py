"""The workflow file that runs conveyor in a CI system: GitHub Actions, GitLab CI or Jenkins.

Each is a commented template (``templates/``) filled in by :func:`render`, a pure function;
:func:`write` puts it where the CI system looks for it, refusing to replace a file unless told.

>>> text = render("gitlab", python="3.12", branch="main", install=["pip install conveyor"])
>>> "image: python:3.12" in text and "    - pip install conveyor" in text
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

from conveyor import __version__
from conveyor.foundation import atomic
from conveyor.foundation.errors import CiError, GitError, PathError

System = Literal["github", "gitlab", "jenkins"]

# Where each CI system reads its workflow, relative to the repository's root.
PATHS: dict[str, str] = {
    "github": ".github/workflows/conveyor.yml",
    "gitlab": ".gitlab-ci.yml",
    "jenkins": "Jenkinsfile",
}
_TEMPLATES = {"github": "github.yml", "gitlab": "gitlab-ci.yml", "jenkins": "Jenkinsfile"}

# What to do after writing the file, for people.
NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "github": (
        "Commit it and open a pull request: the workflow runs `conveyor ci` and comments the "
        "report; pushes to the default branch run `conveyor ci --release`.",
        "Repository secrets (if used): CONVEYOR_DB for a shared metadata store, and the "
        "remote's credentials (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in the job's env.",
        "The comment uses the workflow's own GITHUB_TOKEN (permissions: pull-requests: write).",
    ),
    "gitlab": (
        "Commit it and open a merge request: the pipeline runs `conveyor ci` and comments the "
        "report; the default branch runs `conveyor ci --release`.",
        "CI/CD variable GITLAB_TOKEN (masked): a project access token with the `api` scope and "
        "the Reporter role, for the merge-request note.",
        "CI/CD variables (if used): CONVEYOR_DB for a shared metadata store, and the remote's "
        "credentials (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
    ),
    "jenkins": (
        "Create a Multibranch Pipeline job for the repository (GitHub or GitLab Branch Source).",
        "Credential `github-token` (Secret text): a token that may comment on pull requests; "
        "for GitLab, edit the comment step as its comment says.",
        "Bind CONVEYOR_DB and the remote's credentials in `environment` if the project uses "
        "them; keep the clone whole (no shallow clone) and the workspace between builds.",
    ),
}


def render(
    system: System, *, python: str, branch: str, install: Sequence[str], pip_cache: bool = False
) -> str:
    """The workflow file's text for ``system``.

    ``install`` is the shell commands that install the project and conveyor (see
    :func:`install_commands`); ``branch`` is the default branch, where ``--release`` runs;
    ``pip_cache`` caches pip's downloads keyed on the project's requirements (GitHub's
    setup-python fails the job when it finds no requirements.txt or pyproject.toml to key on).
    """
    template = resources.files("conveyor.ci").joinpath("templates", _TEMPLATES[system])
    values: dict[str, str | Sequence[str]] = {
        "version": __version__,
        "python": python,
        "branch": branch,
        "install": install,
        "pip_cache": ["pip"] if pip_cache else [],
    }
    return _fill(template.read_text(encoding="utf-8"), values)


def _fill(text: str, values: dict[str, str | Sequence[str]]) -> str:
    """Replace ``@name@`` placeholders; a line holding a list-valued one is repeated per item
    (dropped for an empty list), so commands keep the indentation of their line."""
    out: list[str] = []
    for line in text.splitlines():
        lists = [k for k, v in values.items() if not isinstance(v, str) and f"@{k}@" in line]
        if not lists:
            out.append(_fill_scalars(line, values))
            continue
        (name,) = lists  # one list per line is all the templates use
        out.extend(_fill_scalars(line.replace(f"@{name}@", item), values) for item in values[name])
    return "\n".join(out) + "\n"


def _fill_scalars(line: str, values: dict[str, str | Sequence[str]]) -> str:
    for name, value in values.items():
        if isinstance(value, str):
            line = line.replace(f"@{name}@", value)
    return line


def install_commands(requirements: str | None, pyproject: str | None) -> list[str]:
    """How the workflow installs the project and conveyor, from the project's own files.

    ``requirements.txt`` if there is one, else the project itself (``pip install -e .``) when it
    has a ``pyproject.toml``; then conveyor at this version, unless those already name it.

    >>> install_commands("pandas\\nconveyor==0.1.0\\n", None)[1:]
    ['pip install -r requirements.txt']
    """
    commands = ["python -m pip install --upgrade pip"]
    names_conveyor = False
    if requirements is not None:
        commands.append("pip install -r requirements.txt")
        names_conveyor = bool(re.search(r"(?im)^\s*conveyor\s*(?:[\[<>=!~;@]|$)", requirements))
    elif pyproject is not None:
        commands.append("pip install -e .")
        names_conveyor = bool(re.search(r"""["']conveyor\s*(?:[\[<>=!~;@"'])""", pyproject))
    if not names_conveyor:
        commands.append(f'pip install "conveyor[all]=={__version__}"')  # the whole tool
    return commands


def write(
    root: Path,
    system: System,
    *,
    python: str = "3.11",
    branch: str | None = None,
    force: bool = False,
) -> Path:
    """Write ``system``'s workflow under ``root``; refuses to replace a file unless ``force``."""
    path = root / PATHS[system]
    if path.exists() and not force:
        raise PathError(
            f"{PATHS[system]} already exists",
            hint=f"`conveyor ci init {system} --force` replaces it; `--stdout` prints the new "
            "one to merge by hand",
        )
    atomic.write_text(path, text_for(root, system, python=python, branch=branch), parents=True)
    return path


def text_for(root: Path, system: System, *, python: str = "3.11", branch: str | None = None) -> str:
    """:func:`render` with the install commands and default branch read from ``root``."""
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise CiError(f"--python {python}: expected a version such as 3.11")
    files = [root / "requirements.txt", root / "pyproject.toml"]
    texts = [p.read_text(encoding="utf-8") if p.is_file() else None for p in files]
    return render(
        system,
        python=python,
        branch=branch or default_branch(root),
        install=install_commands(*texts),
        pip_cache=any(t is not None for t in texts),
    )


def default_branch(root: Path) -> str:
    """The branch origin's HEAD names, else ``master`` when there is one and no ``main``,
    else ``main``."""
    from conveyor.foundation import git

    try:
        ref = git.run(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD").decode()
        return ref.strip().removeprefix("refs/remotes/origin/")
    except GitError:
        pass
    try:
        heads = git.run(root, "for-each-ref", "--format=%(refname:short)", "refs/heads").decode()
    except GitError:
        return "main"
    names = heads.split()
    return "master" if "master" in names and "main" not in names else "main"

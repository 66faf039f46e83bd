"""Which CI system runs us, and what it says about the change: from its environment variables.

:func:`detect` is pure (a mapping in, a :class:`CiEnv` out) so every system is tested without
running on it; :func:`current` reads the real environment, and GitHub's event file, at the edge.

>>> env = detect({"GITLAB_CI": "true", "CI_MERGE_REQUEST_IID": "7", "CI_DEFAULT_BRANCH": "main"})
>>> env.provider, env.pull_request, env.number, is_main(env)
('gitlab', True, 7, False)
>>> annotation("github", "error", "auc 0.71 < 0.80", file="metrics/eval.json")
'::error file=metrics/eval.json::auc 0.71 < 0.80'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

Provider = Literal["github", "gitlab", "jenkins", "azure", "none"]
Level = Literal["error", "warning", "notice"]

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"


@dataclass(frozen=True)
class CiEnv:
    """What the CI system tells a job about itself. ``None`` where the system does not say.

    ``number`` is the pull request's number (GitHub, Azure with GitHub), the merge request's
    iid (GitLab) or the change id (Jenkins multibranch). ``branch`` is the branch being built
    (a pull request's source branch), ``base_branch`` the branch a pull request merges into.
    ``repository`` is ``owner/name`` (GitHub, Azure) or the project path (GitLab);
    ``project_id`` is GitLab's numeric project id.
    """

    provider: Provider = "none"
    pull_request: bool = False
    number: int | None = None
    branch: str | None = None
    base_branch: str | None = None
    sha: str | None = None
    repository: str | None = None
    project_id: str | None = None
    api_url: str | None = None
    run_url: str | None = None
    default_branch: str | None = None

    @property
    def name(self) -> str:
        """The CI system's name for people: "GitHub Actions", ..., or "no CI"."""
        return _NAMES[self.provider]


_NAMES: dict[str, str] = {
    "github": "GitHub Actions",
    "gitlab": "GitLab CI",
    "jenkins": "Jenkins",
    "azure": "Azure Pipelines",
    "none": "no CI",
}


def detect(environ: Mapping[str, str], event: Mapping[str, Any] | None = None) -> CiEnv:
    """The CI system in ``environ`` (GitHub Actions, GitLab CI, Jenkins, Azure Pipelines).

    ``event`` is GitHub's event payload (the JSON file at ``GITHUB_EVENT_PATH``, see
    :func:`read_event`): it holds a pull request's number and the default branch.
    """
    env = {k: v for k, v in environ.items() if v != ""}  # an empty variable says nothing
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env, event or {})
    if env.get("GITLAB_CI") == "true":
        return _gitlab(env)
    if env.get("TF_BUILD", "").lower() == "true":
        return _azure(env)
    if "JENKINS_URL" in env:
        return _jenkins(env)
    return CiEnv()


def read_event(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """GitHub's event payload, if ``GITHUB_EVENT_PATH`` names a readable JSON file."""
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def current() -> CiEnv:
    """The CI system this process runs under (reads ``os.environ`` and GitHub's event file)."""
    return detect(os.environ, read_event(os.environ))


def is_main(env: CiEnv, default_branch: str | None = None) -> bool:
    """Whether this build is of the default branch itself (not a pull request).

    The default branch is ``default_branch`` if given, else the one the CI system names; where
    it names none (Jenkins, Azure, no CI), ``main`` and ``master`` count.
    """
    if env.pull_request or env.branch is None:
        return False
    default = default_branch or env.default_branch
    return env.branch == default if default else env.branch in ("main", "master")


def annotation(
    provider: str, level: Level, message: str, file: str | None = None, line: int | None = None
) -> str | None:
    """The log line that makes ``provider`` show ``message`` as an annotation, or ``None``
    where the system has no such thing (GitLab, Jenkins, no CI: print the message plainly).

    GitHub: ``::error file=F,line=L::message`` (``error``, ``warning``, ``notice``); Azure:
    ``##vso[task.logissue type=error;sourcepath=F;linenumber=L;]message`` (no ``notice``).
    """
    if provider == "github":
        props = [] if file is None else [f"file={_gh_escape(file, prop=True)}"]
        props += [] if line is None else [f"line={line}"]
        head = f"::{level} {','.join(props)}" if props else f"::{level}"
        return f"{head}::{_gh_escape(message)}"
    if provider == "azure" and level != "notice":
        props = [f"type={level}"]
        if file is not None:
            props.append(f"sourcepath={_az_escape(file)}")
        if line is not None:
            props.append(f"linenumber={line}")
        return f"##vso[task.logissue {';'.join(props)};]{_az_escape(message)}"
    return None


def _gh_escape(text: str, *, prop: bool = False) -> str:
    # Workflow commands end at a newline; properties also end at "," and ":".
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _az_escape(text: str) -> str:
    return (
        text.replace("%", "%AZP25")
        .replace(";", "%3B")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace("]", "%5D")
    )


def _github(env: dict[str, str], event: Mapping[str, Any]) -> CiEnv:
    pr = env.get("GITHUB_EVENT_NAME") in ("pull_request", "pull_request_target")
    number = None
    if pr:
        payload = event.get("pull_request")
        number = _int(payload.get("number") if isinstance(payload, dict) else None)
        if number is None:  # refs/pull/12/merge, when the event file is missing
            match = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", env.get("GITHUB_REF", ""))
            number = int(match.group(1)) if match else None
    repo = event.get("repository")
    server, slug = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    run_id = env.get("GITHUB_RUN_ID")
    return CiEnv(
        provider="github",
        pull_request=pr,
        number=number,
        branch=env.get("GITHUB_HEAD_REF") if pr else _branch(env.get("GITHUB_REF")),
        base_branch=env.get("GITHUB_BASE_REF") if pr else None,
        sha=env.get("GITHUB_SHA"),
        repository=slug,
        api_url=env.get("GITHUB_API_URL", GITHUB_API),
        run_url=f"{server}/{slug}/actions/runs/{run_id}" if server and slug and run_id else None,
        default_branch=_str(repo.get("default_branch")) if isinstance(repo, dict) else None,
    )


def _gitlab(env: dict[str, str]) -> CiEnv:
    mr = "CI_MERGE_REQUEST_IID" in env
    branch = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") if mr else env.get("CI_COMMIT_BRANCH")
    return CiEnv(
        provider="gitlab",
        pull_request=mr,
        number=_int(env.get("CI_MERGE_REQUEST_IID")),
        branch=branch or env.get("CI_COMMIT_REF_NAME"),
        base_branch=env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        sha=env.get("CI_COMMIT_SHA"),
        repository=env.get("CI_PROJECT_PATH"),
        project_id=env.get("CI_PROJECT_ID"),
        api_url=env.get("CI_API_V4_URL"),
        run_url=env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL"),
        default_branch=env.get("CI_DEFAULT_BRANCH"),
    )


def _jenkins(env: dict[str, str]) -> CiEnv:
    # Multibranch pipelines set CHANGE_* for pull requests; BRANCH_NAME is then "PR-12".
    pr = "CHANGE_ID" in env
    branch = env.get("CHANGE_BRANCH") if pr else env.get("BRANCH_NAME")
    if branch is None and not pr and "GIT_BRANCH" in env:  # the git plugin: "origin/main"
        branch = env["GIT_BRANCH"].removeprefix("origin/")
    return CiEnv(
        provider="jenkins",
        pull_request=pr,
        number=_int(env.get("CHANGE_ID")),
        branch=branch,
        base_branch=env.get("CHANGE_TARGET"),
        sha=env.get("GIT_COMMIT"),
        repository=slug_of(env.get("GIT_URL") or env.get("CHANGE_URL") or ""),
        run_url=env.get("BUILD_URL"),
    )


def _azure(env: dict[str, str]) -> CiEnv:
    pr = "SYSTEM_PULLREQUEST_PULLREQUESTID" in env or env.get("BUILD_REASON") == "PullRequest"
    number = env.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER") or env.get(
        "SYSTEM_PULLREQUEST_PULLREQUESTID"
    )
    source = env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH") if pr else env.get("BUILD_SOURCEBRANCH")
    collection, project = env.get("SYSTEM_COLLECTIONURI"), env.get("SYSTEM_TEAMPROJECT")
    build = env.get("BUILD_BUILDID")
    run_url = None
    if collection and project and build:
        base = collection if collection.endswith("/") else collection + "/"
        run_url = f"{base}{quote(project)}/_build/results?buildId={build}"
    return CiEnv(
        provider="azure",
        pull_request=pr,
        number=_int(number) if pr else None,
        branch=_branch(source),
        base_branch=_branch(env.get("SYSTEM_PULLREQUEST_TARGETBRANCH")) if pr else None,
        sha=env.get("BUILD_SOURCEVERSION"),
        repository=env.get("BUILD_REPOSITORY_NAME"),
        run_url=run_url,
    )


def slug_of(url: str) -> str | None:
    """The repository's path (``owner/name``) in a git remote or pull-request URL, else ``None``.

    >>> slug_of("git@github.com:acme/churn.git"), slug_of("https://github.com/acme/churn/pull/3")
    ('acme/churn', 'acme/churn')
    """
    match = re.fullmatch(r"(?:[a-z+]+://(?:[^@/]+@)?[^/]+/|[^@/:]+@[^:/]+:)(.+?)/*", url)
    if match is None:
        return None
    path = re.sub(r"(?:/-)?/(?:pull|merge_requests)/\d+.*$|\.git$", "", match.group(1))
    return path if "/" in path else None


def _branch(ref: str | None) -> str | None:
    """``refs/heads/feature/x`` -> ``feature/x``; tags and other refs are no branch."""
    if ref is None:
        return None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None if ref.startswith("refs/") else ref


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

"""One pull-request comment holding conveyor's report: created once, then updated in place.

The comment is found again by a hidden marker, :data:`MARKER`, on its first line, so every push
to a pull request rewrites the same comment instead of adding another. GitHub's REST API (issue
comments) and GitLab's REST API v4 (merge-request notes) are spoken with the standard library.

    target = resolve_target("github", current(), number=None, repo=None, api_url=None)
    posted = post(target, Path("reports/report.md").read_text(), find_token("github", os.environ))

Every failure is a :class:`~conveyor.foundation.errors.CiError` naming the provider, the
URL (never the token), the HTTP status and what to do about it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from conveyor import __version__
from conveyor.ci.env import GITHUB_API, GITLAB_API, CiEnv
from conveyor.foundation.errors import CiError

Host = Literal["github", "gitlab"]

MARKER = "<!-- conveyor-report -->"
PER_PAGE = 100
# GitHub refuses comment bodies over 65,536 characters; GitLab's notes stop at 1,000,000.
LIMITS: dict[str, int] = {"github": 65_536, "gitlab": 1_000_000}
_MAX_PAGES = 200  # 20,000 comments: far past any real pull request, short of looping forever
_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
# Where each provider's token is looked for, first found wins, with the header it goes in.
TOKEN_VARS: dict[str, tuple[tuple[str, str], ...]] = {
    "github": (("GH_TOKEN", "Authorization"), ("GITHUB_TOKEN", "Authorization")),
    "gitlab": (
        ("CONVEYOR_GITLAB_TOKEN", "PRIVATE-TOKEN"),
        ("GITLAB_TOKEN", "PRIVATE-TOKEN"),
        # A job token can read but, in most setups, not write merge-request notes.
        ("CI_JOB_TOKEN", "JOB-TOKEN"),
    ),
}


@dataclass(frozen=True)
class Target:
    """The pull request (GitHub) or merge request (GitLab) to comment on.

    ``repo`` is ``owner/name`` on GitHub; on GitLab the project's numeric id or its path.
    """

    provider: Host
    api_url: str
    repo: str
    number: int

    @property
    def where(self) -> str:
        kind = "pull request #" if self.provider == "github" else "merge request !"
        return f"{_NAMES[self.provider]} {kind}{self.number} of {self.repo}"

    def comments_url(self, page: int | None = None) -> str:
        api = self.api_url.rstrip("/")
        if self.provider == "github":
            url = f"{api}/repos/{self.repo}/issues/{self.number}/comments"
        else:
            url = f"{api}/projects/{quote(self.repo, safe='')}/merge_requests/{self.number}/notes"
        return url if page is None else f"{url}?per_page={PER_PAGE}&page={page}"

    def comment_url(self, comment_id: int | str) -> str:
        if self.provider == "github":
            return f"{self.api_url.rstrip('/')}/repos/{self.repo}/issues/comments/{comment_id}"
        return f"{self.comments_url()}/{comment_id}"

    @property
    def update_method(self) -> str:
        return "PATCH" if self.provider == "github" else "PUT"


@dataclass(frozen=True)
class Token:
    """A secret from the environment; ``repr`` and every message show only where it came from."""

    source: str
    header: str
    value: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        if self.header == "Authorization":
            return {"Authorization": f"Bearer {self.value}"}
        return {self.header: self.value}


@dataclass(frozen=True)
class Posted:
    """What :func:`post` did: ``created``, ``updated``, or ``unchanged`` (same body already)."""

    action: Literal["created", "updated", "unchanged"]
    id: int
    url: str | None = None


def find_token(provider: Host, environ: Mapping[str, str]) -> Token | None:
    """The first of :data:`TOKEN_VARS` set in ``environ``."""
    for name, header in TOKEN_VARS[provider]:
        if environ.get(name):
            return Token(name, header, environ[name])
    return None


def require_token(provider: Host, environ: Mapping[str, str]) -> Token:
    """:func:`find_token`, or an error that says which variables to set."""
    token = find_token(provider, environ)
    if token is not None:
        return token
    if provider == "github":
        raise CiError(
            "github: no token to comment with: GH_TOKEN and GITHUB_TOKEN are not set",
            hint="in GitHub Actions, give the step `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`"
            " and the workflow `permissions: pull-requests: write`",
        )
    raise CiError(
        "gitlab: no token to comment with: CONVEYOR_GITLAB_TOKEN and GITLAB_TOKEN are not set",
        hint="set GITLAB_TOKEN as a masked CI/CD variable: a project access token with the "
        "`api` scope and the Reporter role",
    )


def resolve_target(
    provider: Host,
    ci: CiEnv,
    *,
    number: int | None = None,
    repo: str | None = None,
    api_url: str | None = None,
) -> Target:
    """The pull request to comment on: the arguments given, else what ``ci`` detected."""
    same = ci.provider == provider
    if number is None:
        if not ci.pull_request or ci.number is None:
            raise CiError(
                f"{provider}: no pull request to comment on: {_why_no_pr(ci)}",
                hint="give the number with --pr N, or run this in a pull-request build",
            )
        number = ci.number
    if repo is None:  # another system's repository name means nothing to this one
        if provider == "gitlab" and ci.provider in ("gitlab", "jenkins"):
            repo = ci.project_id or ci.repository
        elif provider == "github" and ci.provider != "gitlab" and "/" in (ci.repository or ""):
            repo = ci.repository
    if not repo:
        flag = "--repo OWNER/NAME" if provider == "github" else "--project ID"
        raise CiError(
            f"{provider}: which repository? {ci.name} does not say",
            hint=f"give it with {flag}",
        )
    default = GITHUB_API if provider == "github" else GITLAB_API
    return Target(provider, api_url or (ci.api_url if same else None) or default, repo, number)


def _why_no_pr(ci: CiEnv) -> str:
    if ci.provider == "none":
        return "no CI system detected"
    branch = f" of {ci.branch}" if ci.branch else ""
    if ci.pull_request:
        return f"{ci.name} does not say the pull request's number"
    return f"this {ci.name} build{branch} is not a pull request"


def body_for(markdown: str, provider: Host) -> str:
    """``markdown`` under :data:`MARKER`, cut (with a note) to fit the provider's limit."""
    text = markdown.strip()
    text = text.removeprefix(MARKER).lstrip("\n") if text.startswith(MARKER) else text
    body = f"{MARKER}\n{text}\n"
    limit = LIMITS[provider]
    if len(body) <= limit:
        return body
    note = (
        f"\n\n---\n*This report was cut to fit {_NAMES[provider]}'s limit of {limit:,} "
        "characters per comment: the whole report is in the CI run's artifacts.*\n"
    )
    keep = body[: limit - len(note) - 4]  # 4: room to close an open code fence
    cut = keep.rfind("\n")
    if cut > len(keep) // 2:
        keep = keep[:cut]
    if sum(line.lstrip().startswith("```") for line in keep.splitlines()) % 2:
        keep += "\n```"
    return keep + note


def post(target: Target, markdown: str, token: Token, *, timeout: float = 30.0) -> Posted:
    """Create the report comment on ``target``, or update the one carrying :data:`MARKER`."""
    api = _Api(target.provider, token, timeout)
    body = body_for(markdown, target.provider)
    found = _find(api, target)
    if found is not None and found.get("body") == body:
        return Posted("unchanged", int(found["id"]), _str(found.get("html_url")))
    if found is None:
        data = api.call("POST", target.comments_url(), {"body": body})
        action: Literal["created", "updated"] = "created"
    else:
        data = api.call(target.update_method, target.comment_url(found["id"]), {"body": body})
        action = "updated"
    if not isinstance(data, dict) or "id" not in data:
        raise CiError(f"{target.provider}: unexpected answer to a comment: {data!r:.200}")
    return Posted(action, int(data["id"]), _str(data.get("html_url")))


def describe(target: Target, markdown: str, token: Token | None) -> str:
    """What :func:`post` would send, for ``--dry``: requests, headers (secret hidden), body."""
    body = body_for(markdown, target.provider)
    auth = (
        f"{token.header}: {'Bearer ' if token.header == 'Authorization' else ''}*** "
        f"(from ${token.source})"
        if token
        else f"no token: set {' or '.join(n for n, _ in TOKEN_VARS[target.provider][:2])}"
    )
    headers = [f"  {k}: {v}" for k, v in _headers(target.provider).items()]
    lines = [
        f"Would comment on {target.where} through {target.api_url}:",
        f"  find    GET {target.comments_url(1)} (and later pages): the comment whose "
        f"first line is {MARKER}",
        f"  update  {target.update_method} {target.comment_url('{id}')} if found",
        f"  create  POST {target.comments_url()} if not",
        f"  {auth}",
        *headers,
        "  Content-Type: application/json",
        f'body ({len(body):,} characters, sent as {{"body": ...}}):',
        body,
    ]
    return "\n".join(lines)


def _find(api: _Api, target: Target) -> dict[str, Any] | None:
    """The first comment whose body starts with the marker, over every page."""
    for page in range(1, _MAX_PAGES + 1):
        items, headers = api.call_with_headers("GET", target.comments_url(page))
        if not isinstance(items, list):
            raise CiError(f"{target.provider}: expected a list of comments: {items!r:.200}")
        for item in items:
            if not isinstance(item, dict) or item.get("system"):  # GitLab's "added 1 commit"
                continue
            text = item.get("body")
            if isinstance(text, str) and text.lstrip().startswith(MARKER) and "id" in item:
                return item
        if not _has_next(headers, len(items)):
            return None
    return None


def _has_next(headers: Mapping[str, str], count: int) -> bool:
    # GitLab says so in X-Next-Page (empty on the last page), GitHub in Link (rel="next", and
    # no Link at all for a single page); without either, a full page may have a successor.
    next_page = _header(headers, "X-Next-Page")
    if next_page is not None:
        return next_page.strip() != ""
    link = _header(headers, "Link")
    if link is not None:
        return 'rel="next"' in link
    return count >= PER_PAGE


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _headers(provider: Host) -> dict[str, str]:
    if provider == "github":
        return {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"conveyor/{__version__}",
        }
    return {"Accept": "application/json", "User-Agent": f"conveyor/{__version__}"}


class _Api:
    """JSON over HTTP with the provider's headers; HTTP and network errors become ours."""

    def __init__(self, provider: Host, token: Token, timeout: float) -> None:
        self.provider = provider
        self.headers = {**_headers(provider), **token.headers()}
        self.token = token
        self.timeout = timeout

    def call(self, method: str, url: str, payload: object = None) -> Any:
        return self.call_with_headers(method, url, payload)[0]

    def call_with_headers(
        self, method: str, url: str, payload: object = None
    ) -> tuple[Any, Mapping[str, str]]:
        data = None if payload is None else json.dumps(payload).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                answer = dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._refused(method, url, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CiError(
                f"{self.provider}: {method} {url} failed: {reason}",
                hint="check the network and the API URL (--api-url)",
            ) from None
        try:
            return (json.loads(raw) if raw else None), answer
        except ValueError:
            raise CiError(
                f"{self.provider}: {method} {url} answered with something that is not JSON",
                hint="check the API URL (--api-url): it should be the REST API's root",
            ) from None

    def _refused(self, method: str, url: str, exc: urllib.error.HTTPError) -> CiError:
        detail = ""
        try:
            answer = json.loads(exc.read() or b"null")
            if isinstance(answer, dict):
                detail = str(answer.get("message") or answer.get("error") or "")
        except (ValueError, OSError):
            pass
        detail = f": {detail[:200]}" if detail else ""
        message = f"{self.provider}: {method} {url} failed with HTTP {exc.code}{detail}"
        return CiError(message, hint=_hint(self.provider, exc.code, self.token))


def _hint(provider: Host, status: int, token: Token) -> str:
    source = f"the token in ${token.source}"
    if provider == "github":
        if status == 401:
            return (
                f"{source} was refused: in GitHub Actions pass "
                "`GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` in the step's env"
            )
        if status == 403:
            return (
                f"{source} may not comment: give the workflow `permissions: pull-requests: "
                "write` (pull requests from forks only ever get a read-only token)"
            )
        if status == 404:
            return (
                "check --repo OWNER/NAME and --pr N; GitHub also answers 404 when "
                f"{source} cannot see a private repository"
            )
    else:
        if status in (401, 403) and token.header == "JOB-TOKEN":
            return (
                "CI_JOB_TOKEN cannot post merge-request notes in most setups: set "
                "GITLAB_TOKEN (or CONVEYOR_GITLAB_TOKEN) to a project access token with the "
                "`api` scope, as a masked CI/CD variable"
            )
        if status == 401:
            return f"{source} was refused: it may be expired or lack the `api` scope"
        if status == 403:
            return f"{source} needs the `api` scope and at least the Reporter role"
        if status == 404:
            return "check --project (its id or path) and --pr (the merge request's iid)"
    if status == 422:
        return "the API refused the comment's body; see the message above"
    if status == 429 or status >= 500:
        return "the API is overloaded or rate-limited: try again in a minute"
    return "see the API's message above"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None

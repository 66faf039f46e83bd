"""`conveyor ci comment`: one pull-request comment, created once and then updated in place.

GitHub's and GitLab's APIs cannot be reached from here, so these tests run against a real HTTP
server on 127.0.0.1 that imitates both as their documentation describes them: GitHub's issue
comments (REST, ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version``, ``Link`` pagination, oldest first) and GitLab v4's merge-request notes
(``PRIVATE-TOKEN``/``JOB-TOKEN``, ``X-Next-Page`` pagination, newest first, system notes). The
imitation checks each request's method, path, query, headers and JSON body, and answers with
the documented status codes and error bodies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from conveyor.ci import comment
from conveyor.ci.comment import MARKER, Target, Token
from conveyor.ci.env import CiEnv, detect
from conveyor.cli.main import main
from conveyor.foundation.errors import ConveyorError

TOKEN = "s3cret-token-value"
READ_ONLY = "read-only-token"
GITHUB_REPO = ("acme", "churn")
GITLAB_PROJECT = "42"  # also reachable as "acme/churn", URL-encoded, as GitLab allows
CI_VARS = ("GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "JENKINS_URL")
TOKEN_VARS = ("GH_TOKEN", "GITHUB_TOKEN", "CONVEYOR_GITLAB_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN")
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


class Imitation:
    """Comment stores of one GitHub pull request and one GitLab merge request."""

    def __init__(self) -> None:
        self.github: list[dict[str, Any]] = []  # oldest first
        self.gitlab: list[dict[str, Any]] = []  # oldest first; listed newest first
        self.requests: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.next_id = 1000
        self.base = ""

    def add(self, store: list[dict[str, Any]], body: str, **extra: Any) -> dict[str, Any]:
        self.next_id += 1
        item = {"id": self.next_id, "body": body, **extra}
        store.append(item)
        return item


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        state.requests.append((method, self.path))
        parts = url.path.split("/")
        try:
            if parts[1] == "gh":
                self._github(method, parts[2:], parse_qs(url.query))
            elif parts[1:4] == ["gl", "api", "v4"]:
                self._gitlab(method, parts[4:], parse_qs(url.query))
            else:
                self._fail(404, f"no such API: {url.path}")
        except AssertionError as exc:
            state.problems.append(f"{method} {self.path}: {exc}")
            self._send(400, {"message": f"imitation refused: {exc}"})

    # GitHub: https://docs.github.com/en/rest/issues/comments
    def _github(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        state = self.server.state
        auth = self.headers.get("Authorization")
        if auth not in (f"Bearer {TOKEN}", f"Bearer {READ_ONLY}"):
            self._send(401, {"message": "Bad credentials", "status": "401"})
            return
        if method != "GET" and auth == f"Bearer {READ_ONLY}":
            self._send(403, {"message": "Resource not accessible by integration"})
            return
        assert self.headers.get("Accept") == "application/vnd.github+json", "Accept header"
        assert self.headers.get("X-GitHub-Api-Version") == "2022-11-28", "API version header"
        assert self.headers.get("User-Agent", "").startswith("conveyor/"), "User-Agent header"
        if parts[:3] != ["repos", *GITHUB_REPO]:
            self._send(404, {"message": "Not Found", "status": "404"})
            return
        rest = parts[3:]
        if method == "GET" and rest == ["issues", "7", "comments"]:
            assert query.get("per_page") == ["100"], "per_page=100"
            page = int(query["page"][0])
            items, pages = _page(state.github, page)
            links = []
            first = f"{state.base}/gh/repos/acme/churn/issues/7/comments?per_page=100&page="
            if page < pages:
                links += [f'<{first}{page + 1}>; rel="next"', f'<{first}{pages}>; rel="last"']
            if page > 1:
                links += [f'<{first}{page - 1}>; rel="prev"', f'<{first}1>; rel="first"']
            headers = {"Link": ", ".join(links)} if pages > 1 else {}
            self._send(200, items, headers)
        elif method == "POST" and rest == ["issues", "7", "comments"]:
            item = state.add(state.github, self._body())
            item["html_url"] = f"https://github.com/acme/churn/pull/7#issuecomment-{item['id']}"
            self._send(201, item)
        elif method == "PATCH" and rest[:2] == ["issues", "comments"] and len(rest) == 3:
            found = [c for c in state.github if str(c["id"]) == rest[2]]
            if not found:
                self._send(404, {"message": "Not Found"})
                return
            found[0]["body"] = self._body()
            self._send(200, found[0])
        else:
            self._fail(404, f"GitHub has no {method} {'/'.join(parts)}")

    # GitLab: https://docs.gitlab.com/api/notes/#merge-requests
    def _gitlab(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        state = self.server.state
        if TOKEN not in (self.headers.get("PRIVATE-TOKEN"), self.headers.get("JOB-TOKEN")):
            self._send(401, {"message": "401 Unauthorized"})
            return
        if parts[:2] not in (["projects", GITLAB_PROJECT], ["projects", "acme%2Fchurn"]):
            self._send(404, {"message": "404 Project Not Found"})
            return
        assert unquote(parts[1]) in (GITLAB_PROJECT, "acme/churn"), "the project id or path"
        rest = parts[2:]
        if rest[:3] != ["merge_requests", "3", "notes"]:
            self._send(404, {"message": "404 Not found"})
            return
        if method in ("POST", "PUT") and self.headers.get("JOB-TOKEN"):
            self._send(403, {"message": "403 Forbidden"})  # as for a job token in most setups
            return
        if method == "GET" and len(rest) == 3:
            assert query.get("per_page") == ["100"], "per_page=100"
            page = int(query["page"][0])
            items, pages = _page(state.gitlab[::-1], page)  # newest first, as documented
            headers = {
                "X-Page": str(page),
                "X-Per-Page": "100",
                "X-Next-Page": str(page + 1) if page < pages else "",
                "X-Total": str(len(state.gitlab)),
                "X-Total-Pages": str(pages),
            }
            self._send(200, items, headers)
        elif method == "POST" and len(rest) == 3:
            self._send(201, state.add(state.gitlab, self._body(), system=False))
        elif method == "PUT" and len(rest) == 4:
            found = [n for n in state.gitlab if str(n["id"]) == rest[3]]
            if not found:
                self._send(404, {"message": "404 Not found"})
                return
            found[0]["body"] = self._body()
            self._send(200, found[0])
        else:
            self._fail(404, f"GitLab has no {method} {'/'.join(parts)}")

    def _body(self) -> str:
        assert self.headers.get("Content-Type") == "application/json", "JSON content type"
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert isinstance(data, dict) and set(data) == {"body"}, f"body shape: {data!r:.80}"
        assert isinstance(data["body"], str) and data["body"].startswith(MARKER + "\n"), "marker"
        return data["body"]

    def _fail(self, status: int, message: str) -> None:
        self.server.state.problems.append(message)
        self._send(status, {"message": message})

    def _send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


class Server(ThreadingHTTPServer):
    state: Imitation


def _page(items: list[dict[str, Any]], page: int) -> tuple[list[dict[str, Any]], int]:
    pages = max(1, -(-len(items) // 100))
    return items[(page - 1) * 100 : page * 100], pages


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Imitation]:
    for name in (*CI_VARS, *TOKEN_VARS, *PROXY_VARS):
        monkeypatch.delenv(name, raising=False)
    server = Server(("127.0.0.1", 0), Handler)
    server.state = Imitation()
    server.state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert server.state.problems == []


def github(api: Imitation, repo: str = "acme/churn") -> Target:
    return Target("github", f"{api.base}/gh", repo, 7)


def gitlab(api: Imitation, project: str = GITLAB_PROJECT) -> Target:
    return Target("gitlab", f"{api.base}/gl/api/v4", project, 3)


GH_TOKEN = Token("GITHUB_TOKEN", "Authorization", TOKEN)
GL_TOKEN = Token("GITLAB_TOKEN", "PRIVATE-TOKEN", TOKEN)


def test_github_creates_one_comment_then_finds_it_on_a_later_page_and_updates_it(
    api: Imitation,
) -> None:
    api.add(api.github, f"We should put {MARKER} in the docs")  # mentions it: not ours
    for i in range(249):
        api.add(api.github, f"review comment {i}")

    first = comment.post(github(api), "## Report\n\nauc 0.91", GH_TOKEN)
    assert first.action == "created"
    assert first.url and first.url.endswith(f"#issuecomment-{first.id}")
    assert [c["id"] for c in api.github].index(first.id) == 250  # on page 3
    assert [m for m, _ in api.requests] == ["GET", "GET", "GET", "POST"]

    api.requests.clear()
    second = comment.post(github(api), "## Report\n\nauc 0.93", GH_TOKEN)
    assert (second.action, second.id) == ("updated", first.id)
    assert len(api.github) == 251  # no duplicate
    assert api.github[-1]["body"] == f"{MARKER}\n## Report\n\nauc 0.93\n"
    assert api.github[0]["body"].startswith("We should")  # the mention is left alone
    pages = [p for m, p in api.requests if m == "GET"]
    assert pages == [
        f"/gh/repos/acme/churn/issues/7/comments?per_page=100&page={n}" for n in (1, 2, 3)
    ]
    assert api.requests[-1] == ("PATCH", f"/gh/repos/acme/churn/issues/comments/{first.id}")

    third = comment.post(github(api), "## Report\n\nauc 0.93", GH_TOKEN)
    assert third.action == "unchanged" and len(api.github) == 251


def test_gitlab_creates_one_note_then_finds_it_on_a_later_page_and_updates_it(
    api: Imitation,
) -> None:
    first = comment.post(gitlab(api), "report v1", GL_TOKEN)
    assert first.action == "created" and len(api.gitlab) == 1
    for i in range(230):  # newer notes push ours to page 3 (notes are listed newest first)
        api.add(api.gitlab, f"note {i}", system=i % 3 == 0)

    api.requests.clear()
    second = comment.post(gitlab(api, "acme/churn"), "report v2", GL_TOKEN)
    assert (second.action, second.id) == ("updated", first.id)
    assert len(api.gitlab) == 231
    assert api.gitlab[0]["body"] == f"{MARKER}\nreport v2\n"
    assert [m for m, _ in api.requests] == ["GET", "GET", "GET", "PUT"]
    assert (
        api.requests[0][1]
        == "/gl/api/v4/projects/acme%2Fchurn/merge_requests/3/notes?per_page=100&page=1"
    )
    assert (
        api.requests[-1][1] == f"/gl/api/v4/projects/acme%2Fchurn/merge_requests/3/notes/{first.id}"
    )


def test_refusals_name_the_provider_url_and_status_and_say_what_to_do(api: Imitation) -> None:
    wrong = Token("GITHUB_TOKEN", "Authorization", "wrong")
    with pytest.raises(ConveyorError) as err:
        comment.post(github(api), "x", wrong)
    text = str(err.value)
    assert "github: GET " in text and "/gh/repos/acme/churn/issues/7/comments" in text
    assert "HTTP 401: Bad credentials" in text and "GITHUB_TOKEN" in text and "wrong" not in text

    with pytest.raises(ConveyorError) as err:
        comment.post(github(api, "acme/nothing"), "x", GH_TOKEN)
    assert "HTTP 404" in err.value.message and "--repo" in str(err.value.hint)

    with pytest.raises(ConveyorError) as err:
        comment.post(gitlab(api, "99"), "x", GL_TOKEN)
    assert "gitlab: GET" in err.value.message and "HTTP 404: 404 Project Not Found" in str(
        err.value
    )
    assert "--project" in str(err.value.hint)

    with pytest.raises(ConveyorError) as err:
        comment.post(gitlab(api), "x", Token("GITLAB_TOKEN", "PRIVATE-TOKEN", "nope"))
    assert "HTTP 401" in err.value.message and "api` scope" in str(err.value.hint)

    job = Token("CI_JOB_TOKEN", "JOB-TOKEN", TOKEN)  # may read notes, not write them
    with pytest.raises(ConveyorError) as err:
        comment.post(gitlab(api), "x", job)
    assert "HTTP 403" in err.value.message and "GITLAB_TOKEN" in str(err.value.hint)

    read_only = Token("GITHUB_TOKEN", "Authorization", READ_ONLY)  # a fork's pull request
    with pytest.raises(ConveyorError) as err:
        comment.post(github(api), "x", read_only)
    assert "HTTP 403: Resource not accessible by integration" in err.value.message
    assert "pull-requests: write" in str(err.value.hint)

    closed = Target("github", "http://127.0.0.1:9/gh", "acme/churn", 7)  # discard port: nobody
    with pytest.raises(ConveyorError) as err:
        comment.post(closed, "x", GH_TOKEN)
    assert err.value.message.startswith("github: GET http://127.0.0.1:9/gh/repos/acme/churn/")


def test_the_body_carries_the_marker_once_and_fits_the_limit() -> None:
    assert comment.body_for("report", "github") == f"{MARKER}\nreport\n"
    assert comment.body_for(f"{MARKER}\nreport\n", "github") == f"{MARKER}\nreport\n"
    long = "# Report\n\n```\n" + "row of numbers 0.123456\n" * 5000 + "```\n"
    body = comment.body_for(long, "github")
    assert len(body) <= comment.LIMITS["github"] < len(long)
    assert body.startswith(MARKER) and "cut to fit GitHub's limit of 65,536" in body
    assert sum(line.startswith("```") for line in body.splitlines()) == 2  # the fence is closed
    assert comment.body_for(long, "gitlab") == f"{MARKER}\n{long.strip()}\n"


def test_target_and_token_come_from_the_ci_environment() -> None:
    ci = detect(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REF": "refs/pull/7/merge",
            "GITHUB_REPOSITORY": "acme/churn",
            "GITHUB_API_URL": "https://ghe.example.com/api/v3",
        }
    )
    assert comment.resolve_target("github", ci) == Target(
        "github", "https://ghe.example.com/api/v3", "acme/churn", 7
    )
    gl = detect({"GITLAB_CI": "true", "CI_MERGE_REQUEST_IID": "3", "CI_PROJECT_ID": "42"})
    assert comment.resolve_target("gitlab", gl).api_url == "https://gitlab.com/api/v4"
    assert comment.resolve_target("gitlab", gl).repo == "42"

    push = detect(
        {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
    )
    with pytest.raises(ConveyorError, match="build of main is not a pull request") as err:
        comment.resolve_target("github", push)
    assert "--pr N" in str(err.value.hint)
    with pytest.raises(ConveyorError, match="no CI system detected"):
        comment.resolve_target("github", CiEnv())
    with pytest.raises(ConveyorError, match="which repository"):
        comment.resolve_target("gitlab", CiEnv(), number=3)
    assert comment.resolve_target("github", CiEnv(), number=1, repo="a/b").api_url == (
        "https://api.github.com"
    )

    token = comment.find_token("github", {"GITHUB_TOKEN": TOKEN})
    assert token is not None and TOKEN not in repr(token)
    assert token.headers() == {"Authorization": f"Bearer {TOKEN}"}
    gl_token = comment.find_token("gitlab", {"CI_JOB_TOKEN": "j", "GITLAB_TOKEN": "p"})
    assert gl_token is not None and gl_token.headers() == {"PRIVATE-TOKEN": "p"}
    with pytest.raises(ConveyorError, match="GH_TOKEN and GITHUB_TOKEN are not set"):
        comment.require_token("github", {})


def test_cli_comments_from_a_github_actions_pull_request(
    api: Imitation,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}, "repository": {}}))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "report.md").write_text("## conveyor\n\nall gates passed\n")
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "acme/churn",
        "GITHUB_API_URL": f"{api.base}/gh",
        "GITHUB_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)

    assert main(["ci", "comment", "--dry"]) == 0
    out = capsys.readouterr().out
    assert (
        "GitHub pull request #7 of acme/churn" in out and "Bearer *** (from $GITHUB_TOKEN)" in out
    )
    assert TOKEN not in out and out.rstrip().endswith("all gates passed") and api.requests == []

    assert main(["ci", "comment"]) == 0
    assert "posted the report comment" in capsys.readouterr().out
    assert main(["ci", "comment", "--provider", "github"]) == 0
    assert "the report comment is up to date" in capsys.readouterr().out
    (tmp_path / "reports" / "report.md").write_text("## conveyor\n\none gate failed\n")
    assert main(["ci", "comment"]) == 0
    assert "updated the report comment" in capsys.readouterr().out
    assert len(api.github) == 1 and "one gate failed" in api.github[0]["body"]

    assert main(["ci", "comment", "--file", "reports/missing.md"]) == 2
    err = capsys.readouterr().err
    assert "reports/missing.md: no such file" in err and "conveyor report" in err

    monkeypatch.setenv("GITHUB_TOKEN", "expired")
    assert main(["ci", "comment"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "expired" not in err and "Traceback" not in err


def test_cli_outside_ci_needs_the_provider_and_the_pull_request(
    api: Imitation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ci", "comment", "--dry"]) == 2
    assert "give --provider github or gitlab (no CI detected)" in capsys.readouterr().err
    assert main(["ci", "comment", "--provider", "gitlab", "--dry"]) == 1
    err = capsys.readouterr().err
    assert "no pull request to comment on: no CI system detected" in err and "--pr N" in err

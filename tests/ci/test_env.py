"""Detecting the CI system from its documented environment variables; annotations."""

from __future__ import annotations

import json
from pathlib import Path

from conveyor.ci.env import CiEnv, annotation, detect, is_main, read_event, slug_of

GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/churn",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_API_URL": "https://api.github.com",
    "GITHUB_RUN_ID": "9001",
    "GITHUB_SHA": "a" * 40,
}


def test_github_pull_request_and_push() -> None:
    pr = detect(
        {
            **GITHUB,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REF": "refs/pull/12/merge",
            "GITHUB_HEAD_REF": "feature/lr",
            "GITHUB_BASE_REF": "main",
        },
        {"pull_request": {"number": 12}, "repository": {"default_branch": "main"}},
    )
    assert pr == CiEnv(
        provider="github",
        pull_request=True,
        number=12,
        branch="feature/lr",
        base_branch="main",
        sha="a" * 40,
        repository="acme/churn",
        api_url="https://api.github.com",
        run_url="https://github.com/acme/churn/actions/runs/9001",
        default_branch="main",
    )
    assert not is_main(pr) and pr.name == "GitHub Actions"
    # Without the event file the number still comes from the merge ref.
    no_event = detect(
        {**GITHUB, "GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/pull/5/merge"}
    )
    assert no_event.pull_request and no_event.number == 5

    push = detect(
        {
            **GITHUB,
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_HEAD_REF": "",
        },
        {"repository": {"default_branch": "main"}},
    )
    assert (push.pull_request, push.number, push.branch, push.base_branch) == (
        False,
        None,
        "main",
        None,
    )
    assert is_main(push)
    tag = detect({**GITHUB, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.0"})
    assert tag.branch is None and not is_main(tag)
    ghe = detect({"GITHUB_ACTIONS": "true"})
    assert ghe.api_url == "https://api.github.com" and ghe.run_url is None


def test_gitlab_merge_request_and_default_branch() -> None:
    base = {
        "GITLAB_CI": "true",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_SHA": "b" * 40,
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "acme/ml/churn",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "CI_PIPELINE_URL": "https://gitlab.example.com/acme/ml/churn/-/pipelines/77",
        "CI_JOB_URL": "https://gitlab.example.com/acme/ml/churn/-/jobs/1234",
    }
    mr = detect(
        {
            **base,
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/lr",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
            "CI_COMMIT_REF_NAME": "feature/lr",
        }
    )
    assert (mr.provider, mr.pull_request, mr.number) == ("gitlab", True, 3)
    assert (mr.branch, mr.base_branch, mr.default_branch) == ("feature/lr", "main", "main")
    assert (mr.project_id, mr.repository) == ("42", "acme/ml/churn")
    assert mr.api_url == "https://gitlab.example.com/api/v4"
    assert mr.run_url == "https://gitlab.example.com/acme/ml/churn/-/pipelines/77"
    assert mr.sha == "b" * 40 and not is_main(mr)

    main = detect(
        {**base, "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main", "CI_PIPELINE_URL": ""}
    )
    assert (main.pull_request, main.branch, main.number) == (False, "main", None)
    assert main.run_url == "https://gitlab.example.com/acme/ml/churn/-/jobs/1234"
    assert is_main(main)
    other = detect({**base, "CI_COMMIT_REF_NAME": "develop"})
    assert other.branch == "develop" and not is_main(other)


def test_jenkins_multibranch_change_and_branch() -> None:
    base = {"JENKINS_URL": "https://ci.example.com/", "GIT_COMMIT": "c" * 40}
    change = detect(
        {
            **base,
            "BUILD_URL": "https://ci.example.com/job/churn/job/PR-8/4/",
            "BRANCH_NAME": "PR-8",
            "CHANGE_ID": "8",
            "CHANGE_BRANCH": "feature/lr",
            "CHANGE_TARGET": "main",
            "CHANGE_URL": "https://github.com/acme/churn/pull/8",
        }
    )
    assert (change.provider, change.pull_request, change.number) == ("jenkins", True, 8)
    assert (change.branch, change.base_branch) == ("feature/lr", "main")
    assert change.repository == "acme/churn" and change.sha == "c" * 40
    assert change.run_url == "https://ci.example.com/job/churn/job/PR-8/4/"
    assert change.default_branch is None and not is_main(change)

    branch = detect({**base, "BRANCH_NAME": "master", "GIT_URL": "git@github.com:acme/churn.git"})
    assert (branch.pull_request, branch.branch, branch.repository) == (
        False,
        "master",
        "acme/churn",
    )
    assert is_main(branch)  # no default branch known: main and master count
    assert not is_main(branch, default_branch="trunk")
    freestyle = detect({**base, "GIT_BRANCH": "origin/main"})
    assert freestyle.branch == "main"


def test_azure_pipelines_pull_request_and_build() -> None:
    base = {
        "TF_BUILD": "True",
        "BUILD_SOURCEVERSION": "d" * 40,
        "BUILD_REPOSITORY_NAME": "acme/churn",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
        "SYSTEM_TEAMPROJECT": "ML Platform",
        "BUILD_BUILDID": "314",
    }
    pr = detect(
        {
            **base,
            "BUILD_REASON": "PullRequest",
            "BUILD_SOURCEBRANCH": "refs/pull/21/merge",
            "SYSTEM_PULLREQUEST_PULLREQUESTID": "123456",
            "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": "21",
            "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature/lr",
            "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main",
        }
    )
    assert (pr.provider, pr.pull_request, pr.number) == ("azure", True, 21)
    assert (pr.branch, pr.base_branch, pr.sha) == ("feature/lr", "main", "d" * 40)
    assert pr.run_url == "https://dev.azure.com/acme/ML%20Platform/_build/results?buildId=314"
    azure_repos = detect({**base, "SYSTEM_PULLREQUEST_PULLREQUESTID": "77"})
    assert azure_repos.number == 77  # Azure Repos: the id is the number

    build = detect({**base, "BUILD_SOURCEBRANCH": "refs/heads/main"})
    assert (build.pull_request, build.branch, build.number) == (False, "main", None)
    assert is_main(build)


def test_no_ci() -> None:
    assert detect({}) == CiEnv()
    assert detect({"CI": "true", "GITHUB_ACTIONS": ""}).provider == "none"
    assert detect({}).name == "no CI" and not is_main(CiEnv())


def test_github_event_file_is_read_at_the_edge(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 4}}))
    assert read_event({"GITHUB_EVENT_PATH": str(event)}) == {"pull_request": {"number": 4}}
    assert read_event({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}) is None
    event.write_text("not json")
    assert read_event({"GITHUB_EVENT_PATH": str(event)}) is None
    assert read_event({}) is None


def test_annotations_per_system() -> None:
    assert annotation("github", "error", "auc 0.71 < 0.80") == "::error::auc 0.71 < 0.80"
    assert (
        annotation("github", "warning", "drift: 50%\nsee report", file="data/a,b.csv", line=3)
        == "::warning file=data/a%2Cb.csv,line=3::drift: 50%25%0Asee report"
    )
    assert annotation("github", "notice", "ok", line=1) == "::notice line=1::ok"
    azure = annotation("azure", "error", "gate auc; failed", file="metrics/eval.json", line=2)
    assert azure == (
        "##vso[task.logissue type=error;sourcepath=metrics/eval.json;linenumber=2;]"
        "gate auc%3B failed"
    )
    assert annotation("azure", "warning", "w") == "##vso[task.logissue type=warning;]w"
    assert annotation("azure", "notice", "n") is None  # Azure has errors and warnings only
    for provider in ("gitlab", "jenkins", "none"):
        assert annotation(provider, "error", "plain") is None


def test_slug_of_git_urls() -> None:
    assert slug_of("https://github.com/acme/churn.git") == "acme/churn"
    assert slug_of("git@github.com:acme/churn.git") == "acme/churn"
    assert slug_of("ssh://git@gitlab.example.com:2222/acme/ml/churn.git") == "acme/ml/churn"
    assert slug_of("https://gitlab.com/acme/ml/churn/-/merge_requests/4") == "acme/ml/churn"
    assert slug_of("https://github.com/acme") is None
    assert slug_of("") is None

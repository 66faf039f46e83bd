"""`conveyor ci`: the CI job. `ci init` writes a workflow file; `ci comment` posts the report on
the pull request.

The job itself (`conveyor ci [--release]`: pull, run, check, report, release) is
:func:`conveyor.ci.job.run_job`; this module prints what it hears of each step.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table
from conveyor.cli.render import JobPrinter

if TYPE_CHECKING:
    from conveyor.ci.comment import Host, Posted, Target

group("ci", help="the whole CI job (pull, run, check, report); workflow files; the PR comment")

SYSTEMS = ("github", "gitlab", "jenkins")
HOSTS = ("github", "gitlab")


@command(
    "ci init",
    arg("system", choices=SYSTEMS, metavar="{github,gitlab,jenkins}"),
    arg("--force", action="store_true", help="replace an existing workflow file"),
    arg("--python", default="3.11", metavar="X.Y", help="the Python the job uses (3.11)"),
    arg("--branch", metavar="BRANCH", help="the default branch (default: origin's HEAD, or main)"),
    arg("--stdout", action="store_true", help="print the workflow instead of writing it"),
    help="write a CI workflow: conveyor ci on pull requests, --release on the default branch",
)
def init_cmd(opts: Namespace) -> None:
    """Write .github/workflows/conveyor.yml, .gitlab-ci.yml or Jenkinsfile: check out the whole
    history, install the project, cache the object store, run `conveyor ci` on pull requests
    and `conveyor ci --release` on the default branch, publish the reports and comment."""
    from conveyor.ci import workflows
    from conveyor.foundation import git
    from conveyor.foundation.errors import ConveyorError
    from conveyor.foundation.paths import find_root

    root = find_root()
    if opts.stdout:
        text = workflows.text_for(root, opts.system, python=opts.python, branch=opts.branch)
        print(text, end="")
        return
    path = workflows.write(
        root, opts.system, python=opts.python, branch=opts.branch, force=opts.force
    )
    echo(f"wrote {path.relative_to(root)}")
    try:
        top = git.toplevel(root)
    except ConveyorError:
        top = root
    if top.resolve() != root.resolve():
        echo(
            f"note: the git repository's root is {top}: CI systems read workflow files from "
            "there; move the file and run the commands in this project's folder",
            fg="yellow",
            err=True,
        )
    echo(style("Next steps:", bold=True))
    for step in workflows.NEXT_STEPS[opts.system]:
        echo(f"  - {step}")


@command(
    "ci comment",
    arg("--provider", choices=HOSTS, help="default: the CI system this runs in"),
    arg("--file", default="reports/report.md", metavar="PATH", help="the Markdown to post"),
    arg("--pr", type=int, metavar="N", help="the pull or merge request (default: this build's)"),
    arg(
        "--repo",
        "--project",
        dest="repo",
        metavar="REPO",
        help="GitHub's owner/name, or GitLab's project id or path (default: this build's)",
    ),
    arg("--api-url", metavar="URL", help="the REST API's root, for GitHub Enterprise or GitLab"),
    arg("--dry", action="store_true", help="print what would be sent; send nothing"),
    help="post the report as one pull-request comment, updated on later pushes",
)
def comment_cmd(opts: Namespace) -> None:
    """Post the report (reports/report.md) as one comment on the pull request (GitHub) or merge
    request (GitLab), or update the comment an earlier push posted: it is found by a hidden
    marker, <!-- conveyor-report -->, on its first line. The token comes from GH_TOKEN or
    GITHUB_TOKEN, or from CONVEYOR_GITLAB_TOKEN or GITLAB_TOKEN."""
    from conveyor.ci import comment
    from conveyor.ci.env import current

    ci = current()
    provider: Host
    if opts.provider:
        provider = opts.provider
    elif ci.provider == "github" or ci.provider == "gitlab":
        provider = ci.provider
    else:
        raise UsageError(f"give --provider github or gitlab ({ci.name} detected)")
    target = comment.resolve_target(
        provider, ci, number=opts.pr, repo=opts.repo, api_url=opts.api_url
    )
    markdown = _read_report(opts.file)
    if opts.dry:
        import os

        print(comment.describe(target, markdown, comment.find_token(provider, os.environ)))
        return
    posted = post_report(target, markdown)
    said = {
        "created": "posted the report comment",
        "updated": "updated the report comment",
        "unchanged": "the report comment is up to date",
    }[posted.action]
    shown = f": {posted.url}" if posted.url else ""
    echo(f"{said} (id {posted.id}) on {target.where}{shown}")


def post_report(target: Target, markdown: str) -> Posted:
    """Post or update the report comment with the token from the environment."""
    import os

    from conveyor.ci import comment

    return comment.post(target, markdown, comment.require_token(target.provider, os.environ))


def _read_report(name: str) -> str:

    from conveyor.foundation.errors import PathError

    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(
            f"{name}: no such file",
            hint="`conveyor report` (or `conveyor ci`) writes reports/report.md; "
            "--file names another",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PathError(f"{name}: cannot read it: {exc}") from None


@command(
    "ci",
    arg("--release", action="store_true", help="on the default branch: register and set staging"),
    arg("--no-pull", action="store_true", help="skip pulling data (the cache is already warm)"),
    arg(
        "--all-models",
        action="store_true",
        help="pull every registered model version (default: the aliased ones)",
    ),
    arg(
        "--no-run-cache",
        action="store_true",
        help="do not pull the run-cache's entries (default: pulled, so what a teammate ran is "
        "restored, not run again)",
    ),
    arg("--base", metavar="REV_OR_ALIAS", help="what the report compares with"),
    arg("--alias", default="staging", help="the alias --release sets (default: staging)"),
    help="the whole CI job: pull, run, check, report (exit code: the gates' verdict)",
)
def ci_cmd(opts: Namespace) -> int:
    """The whole CI job in one command, in any CI system: pull the data, run the pipeline
    (cached), check the gates, write the reports and print a summary. With --release on the
    default branch and passing gates, also register the changed models and point the staging
    alias at them. The exit code is the gates' verdict (1: a blocking gate failed)."""
    from conveyor.ci.env import current
    from conveyor.ci.job import JobOptions, run_job
    from conveyor.foundation.paths import find_root

    root = find_root()
    env = current()
    where = env.name if env.provider != "none" else "no CI system detected (a local run)"
    if env.pull_request:
        where += f", pull request #{env.number} into {env.base_branch or '?'}"
    elif env.branch:
        where += f", branch {env.branch}"
    echo(style(f"conveyor ci: {where}", bold=True))
    options = JobOptions(
        release=opts.release,
        pull=not opts.no_pull,
        every_model=opts.all_models,
        run_cache=not opts.no_run_cache,
        base=opts.base,
        alias=opts.alias,
    )
    printer = JobPrinter(root, all_models=opts.all_models, run_cache=options.run_cache)
    done = run_job(root, options, printer)
    echo(style("\n== summary", bold=True))
    table(
        ["step", "result", "seconds"], [[s.name, s.result, f"{s.seconds:.1f}"] for s in done.steps]
    )
    echo(f"exit {done.code}: " + ("the gates passed" if done.code == 0 else "see above"))
    return done.code

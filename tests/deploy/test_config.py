"""The deploy: section: environments as values, every mistake with its line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.deploy import config
from conveyor.deploy.config import Analysis, Check, Environment, Step, Strategy, Webhook
from conveyor.deploy.errors import UnknownEnvironment
from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import ConfigErrors
from tests.conftest import Project

ISSUE_EXAMPLE = """\
deploy:
  production:
    model: classifier
    target: local
    serve: {port: 8080, workers: 2}
    strategy:
      canary:
        steps: [{weight: 10}, {pause: 30s}, {weight: 50}, {pause: 30s}, {weight: 100}]
    analysis:
      interval: 1s
      failure_limit: 1
      deadline: 10m
      checks:
        - {metric: error_rate, max_increase: 0.01}
        - {metric: latency_p99, max_ratio: 1.25}
        - {metric: accuracy, min_change: -0.02, confidence: 0.95, min_samples: 200}
        - {metric: prediction_drift, max_psi: 0.2}
        - {metric: agreement, min: 0.95}
    webhooks:
      - {url: "https://hooks.example/x", events: [started, promoted, aborted, rolled_back], secret_env: DEPLOY_HOOK_SECRET}
"""  # noqa: E501


def parse(text: str) -> dict[str, Environment]:
    doc = yamlio.load(text, "conveyor.yaml")
    return config.parse(doc.data["deploy"], doc)


def errors(text: str) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    error = info.value
    return list(error.parts) if isinstance(error, ConfigErrors) else [error]


def one_error(text: str) -> ConfigError:
    found = errors(text)
    assert len(found) == 1, [str(e) for e in found]
    return found[0]


def env(body: str) -> str:
    """An environment 'prod' of model clf with ``body`` (indented by 4) added."""
    return "deploy:\n  prod:\n    model: clf\n" + body


# ------------------------------------------------------------------------------- good input


def test_the_issue_example_reads_into_values() -> None:
    prod = parse(ISSUE_EXAMPLE)["production"]
    assert prod == Environment(
        name="production",
        model="classifier",
        target="local",
        port=8080,
        workers=2,
        strategy=Strategy(
            "canary",
            (Step(weight=10), Step(pause=30), Step(weight=50), Step(pause=30), Step(weight=100)),
        ),
        analysis=Analysis(
            interval=1.0,
            failure_limit=1,
            deadline=600.0,
            checks=(
                Check("error_rate", max_increase=0.01),
                Check("latency_p99", max_ratio=1.25),
                Check("accuracy", min_change=-0.02, confidence=0.95, min_samples=200),
                Check("prediction_drift", max_psi=0.2),
                Check("agreement", min=0.95),
            ),
        ),
        webhooks=(
            Webhook(
                "https://hooks.example/x",
                ("started", "promoted", "aborted", "rolled_back"),
                "DEPLOY_HOOK_SECRET",
            ),
        ),
    )


def test_an_environment_with_only_a_model_gets_the_documented_defaults() -> None:
    prod = parse("deploy:\n  prod: {model: clf}\n")["prod"]
    assert (prod.target, prod.host, prod.port, prod.workers) == ("local", "127.0.0.1", 8080, 1)
    assert prod.strategy.kind == "canary"
    assert [(s.weight, s.pause) for s in prod.strategy.steps] == [
        (10, None), (None, 30), (50, None), (None, 30), (100, None)
    ]  # fmt: skip
    assert prod.analysis == Analysis()
    assert prod.analysis.checks == (
        Check("error_rate", max_increase=0.01),
        Check("latency_p99", max_ratio=1.25),
    )
    assert (prod.analysis.interval, prod.analysis.deadline) == (1.0, 600.0)
    assert prod.analysis.on_deadline == "abort" and prod.webhooks == ()


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            "{ab: {split: 20, sticky: 'header:x-user-id', metric: accuracy, confidence: 0.9, "
            "min_samples: 300}}",
            Strategy("ab", split=20, sticky="header:x-user-id", confidence=0.9, min_samples=300),
        ),
        ("{ab: {}}", Strategy("ab")),
        ("{ab: {sticky: 'cookie:uid', metric: error_rate}}", Strategy("ab", sticky="cookie:uid",
                                                                        metric="error_rate")),
        (
            "{shadow: {fraction: 0.5, min_agreement: 0.9, duration: 2m}}",
            Strategy("shadow", fraction=0.5, min_agreement=0.9, duration=120),
        ),
        ("{shadow: {}}", Strategy("shadow", duration=600)),
        ("{blue_green: {}}", Strategy("blue_green")),
        ("{blue_green: }", Strategy("blue_green")),
        ("blue_green", Strategy("blue_green")),
    ],
)  # fmt: skip
def test_each_strategy_kind(strategy: str, expected: Strategy) -> None:
    assert parse(env(f"    strategy: {strategy}\n"))["prod"].strategy == expected


def test_a_shadow_is_judged_on_errors_and_agreement_and_answers_from_its_own_process() -> None:
    shadow = parse(env("    strategy: shadow\n"))["prod"]
    assert [c.metric for c in shadow.analysis.checks] == ["error_rate"]
    assert shadow.candidate == "auto" and shadow.isolated
    canary = parse(env("    serve: {candidate: process}\n"))["prod"]
    assert [c.metric for c in canary.analysis.checks] == ["error_rate", "latency_p99"]
    assert canary.isolated
    assert not parse(env(""))["prod"].isolated  # a canary answers inline by default
    assert not parse(env("    strategy: shadow\n    serve: {candidate: inline}\n"))["prod"].isolated


def test_a_pause_without_duration_waits_for_resume() -> None:
    steps = parse(env("    strategy: {canary: {steps: [{weight: 5}, {pause: }, {pause: {}}]}}\n"))
    waits = steps["prod"].strategy.steps[1:]
    assert waits == (Step(), Step()) and all(s.waits_for_resume for s in waits)
    assert not Step(pause=0).waits_for_resume


def test_several_environments_and_webhook_defaults() -> None:
    text = (
        "deploy:\n  staging: {model: clf, serve: {host: 0.0.0.0, port: 9000}}\n"
        "  production:\n    model: clf\n    webhooks: [{url: 'http://127.0.0.1:9/h'}]\n"
    )
    envs = parse(text)
    assert list(envs) == ["staging", "production"]
    assert (envs["staging"].host, envs["staging"].port) == ("0.0.0.0", 9000)
    (hook,) = envs["production"].webhooks
    assert hook.events == ("started", "promoted", "aborted", "rolled_back")
    assert hook.secret_env == ""


# ---------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0), ("500ms", 0.5), ("1d", 86400.0),
        ("1m30s", 90.0), ("1.5s", 1.5), ("2", 2.0), (" 45s ", 45.0), (2, 2.0), (0.25, 0.25),
        (0, 0.0), ("0s", 0.0),
    ],
)  # fmt: skip
def test_durations(text: str | int | float, seconds: float) -> None:
    assert config.duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "s", "30x", "ten minutes", "-5s", "5 s", "1m 30s", "inf", "nan", True, None, [1]]
)
def test_what_is_no_duration(text: object) -> None:
    with pytest.raises(ConfigError) as info:
        config.duration(text)  # type: ignore[arg-type]
    assert "is not a duration" in info.value.message
    assert info.value.hint is not None and "30s" in info.value.hint


# ----------------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (  # environment level
            "deploy:\n  prod:\n    modle: clf\n",
            "conveyor.yaml:3: environment 'prod' has no key 'modle'",
            "did you mean 'model'?",
        ),
        (
            env("    target: kubernets\n"),
            "conveyor.yaml:4: target: 'kubernets' is not one of local, kubernetes",
            "did you mean 'kubernetes'?",
        ),
        (  # serve
            env("    serve:\n      prot: 80\n"),
            "conveyor.yaml:5: serve has no key 'prot'",
            "did you mean 'port'?",
        ),
        (env("    serve: {port: 8e3}\n"), "conveyor.yaml:4: port: a whole number, not 8000.0",
         None),
        (env("    serve: {port: 70000}\n"), "conveyor.yaml:4: port: at most 65535, not 70000",
         None),
        (env("    serve: {workers: 0}\n"), "conveyor.yaml:4: workers: at least 1, not 0", None),
        (  # the strategy's kind
            env("    strategy:\n      canery: {steps: [{weight: 10}]}\n"),
            "conveyor.yaml:5: strategy has no key 'canery'",
            "did you mean 'canary'?",
        ),
        (
            env("    strategy:\n      blue-green: {}\n"),
            "conveyor.yaml:5: strategy has no key 'blue-green'",
            "did you mean 'blue_green'?",
        ),
        (  # a strategy's settings
            env("    strategy:\n      shadow:\n        min_agrement: 0.9\n"),
            "conveyor.yaml:6: the shadow strategy has no key 'min_agrement'",
            "did you mean 'min_agreement'?",
        ),
        (
            env("    strategy:\n      canary:\n        stpes: []\n"),
            "conveyor.yaml:6: the canary strategy has no key 'stpes'",
            "did you mean 'steps'?",
        ),
        (  # a step
            env("    strategy:\n      canary:\n        steps:\n          - {wieght: 10}\n"),
            "conveyor.yaml:7: step 1 has no key 'wieght'",
            "did you mean 'weight'?",
        ),
        (
            env("    strategy:\n      canary:\n        steps:\n          - {weight: 5}\n"
                "          - {weight: 10, pause: 3s}\n"),
            "conveyor.yaml:8: step 2: give exactly one of weight or pause; it has both",
            "{pause: 30s}",
        ),
        (
            env("    strategy: {canary: {steps: [{weight: 5}, {pause: 3x}]}}\n"),
            "conveyor.yaml:4: pause: '3x' is not a duration",
            "10m",
        ),
        (
            env("    strategy:\n      canary:\n        steps:\n          - weight: 120\n"),
            "conveyor.yaml:7: weight: at most 100, not 120",
            None,
        ),
        (
            env("    strategy: {canary: {steps: []}}\n"),
            "conveyor.yaml:4: steps: a canary needs a list of steps, like "
            "[{weight: 10}, {pause: 30s}]",
            None,
        ),
        (
            env("    strategy: {canary: {steps: [{weight: 5}]}, ab: {}}\n"),
            "conveyor.yaml:4: strategy: give exactly one of canary, ab, shadow, blue_green; "
            "it has canary and ab",
            None,
        ),
        (
            env("    strategy: {ab: {metric: acuracy}}\n"),
            "conveyor.yaml:4: metric: 'acuracy' is not one of accuracy, error_rate",
            "did you mean 'accuracy'?",
        ),
        (
            env("    strategy: {ab: {sticky: 'head:x'}}\n"),
            "conveyor.yaml:4: sticky: 'head:x' is not a request key",
            "header:NAME or cookie:NAME",
        ),
        (env("    strategy: {ab: {split: 100}}\n"), "conveyor.yaml:4: split: below 100, not 100",
         None),
        (
            env("    strategy: {shadow: {duration: 0s}}\n"),
            "conveyor.yaml:4: duration: must be more than 0, not '0s'",
            None,
        ),
        (  # analysis
            env("    analysis:\n      intervl: 1s\n"),
            "conveyor.yaml:5: analysis has no key 'intervl'",
            "did you mean 'interval'?",
        ),
        (
            env("    analysis:\n      deadline: soon\n"),
            "conveyor.yaml:5: deadline: 'soon' is not a duration",
            None,
        ),
        (
            env("    analysis:\n      interval: 0\n"),
            "conveyor.yaml:5: interval: must be more than 0, not 0",
            None,
        ),
        (
            env("    analysis:\n      failure_limit: 0\n"),
            "conveyor.yaml:5: failure_limit: at least 1, not 0",
            None,
        ),
        (
            env("    analysis:\n      on_deadline: promte\n"),
            "conveyor.yaml:5: on_deadline: 'promte' is not one of abort, promote",
            "did you mean 'promote'?",
        ),
        (  # a check
            env("    analysis:\n      checks:\n        - {metric: latency_p90, max_ratio: 2}\n"),
            "conveyor.yaml:6: metric: 'latency_p90' is not one of error_rate, latency_p50, "
            "latency_p99, accuracy, prediction_drift, agreement",
            "did you mean 'latency_p99'",
        ),
        (
            env("    analysis:\n      checks:\n        - metric: error_rate\n"
                "          max_increse: 0.01\n"),
            "conveyor.yaml:7: check 1 (error_rate) has no key 'max_increse'",
            "did you mean 'max_increase'?",
        ),
        (
            env("    analysis:\n      checks:\n        - metric: latency_p99\n"
                "          max_increase: 0.01\n"),
            "conveyor.yaml:7: check 1 (latency_p99): latency_p99 takes max_ratio:, not "
            "max_increase: (max_increase is for error_rate)",
            "{metric: latency_p99, max_ratio: ...}",
        ),
        (
            env("    analysis:\n      checks:\n        - {metric: accuracy}\n"),
            "conveyor.yaml:6: check 1 (accuracy): accuracy needs min_change:",
            "min_change: -0.02",
        ),
        (
            env("    analysis:\n      checks:\n        - {metric: agreement, min: 1.5}\n"),
            "conveyor.yaml:6: min: at most 1, not 1.5",
            None,
        ),
        (
            env("    analysis:\n      checks:\n        - {metric: accuracy, min_change: 0, "
                "confidence: 95}\n"),
            "conveyor.yaml:6: confidence: below 1, not 95",
            None,
        ),
        (
            env("    analysis:\n      checks:\n        - {metric: error_rate, max_increase: 0}\n"
                "        - {metric: error_rate, max_increase: 0.1}\n"),
            "conveyor.yaml:7: check 2: error_rate is checked twice (check 1)",
            "one check per metric",
        ),
        (
            env("    analysis:\n      checks: {metric: error_rate}\n"),
            "conveyor.yaml:5: checks: a list of checks, like - {metric: error_rate, "
            "max_increase: 0.01}",
            None,
        ),
        (  # webhooks
            env("    webhooks:\n      - {url: 'https://h.example', evnts: [promoted]}\n"),
            "conveyor.yaml:5: webhook 1 has no key 'evnts'",
            "did you mean 'events'?",
        ),
        (
            env("    webhooks:\n      - {url: 'https://h.example', events: [promotd]}\n"),
            "conveyor.yaml:5: events: unknown event 'promotd'",
            "did you mean 'promoted'?",
        ),
        (
            env("    webhooks:\n      - {url: 'https://h.example', events: []}\n"),
            "conveyor.yaml:5: events: a list of event names",
            "promoted",
        ),
        (
            env("    webhooks:\n      - {url: 'ftp://h.example'}\n"),
            "conveyor.yaml:5: url: 'ftp://h.example' is not an http(s) URL",
            None,
        ),
        (
            env("    webhooks:\n      - {url: 'https://h.example', secret: whsec_abc}\n"),
            "conveyor.yaml:5: webhook 1 has no key 'secret'",
            "secrets never go in conveyor.yaml",
        ),
        (
            env("    webhooks:\n      - {url: 'https://h.example', secret_env: 'whsec abc'}\n"),
            "conveyor.yaml:5: secret_env: 'whsec abc' is not an environment variable's name",
            "not the secret",
        ),
        (  # the environment itself
            "deploy:\n  Prod: {model: clf}\n",
            "conveyor.yaml:2: 'Prod' is not an environment name",
            "lowercase",
        ),
        ("deploy:\n  prod: {model: 'a b'}\n", "conveyor.yaml:2: model: 'a b' is not a model name",
         None),
        ("deploy:\n  prod: {}\n", "conveyor.yaml:2: environment 'prod' needs 'model'", None),
        ("deploy:\n  prod: clf\n", "conveyor.yaml:2: environment 'prod' is a mapping with at "
         "least model:", None),
        ("deploy: [prod]\n", "conveyor.yaml:1: 'deploy' maps environment names to their "
         "settings", None),
        (  # a shadow's copies are batched at a low priority: their latency is not the model's
            env("    strategy: shadow\n    analysis:\n      checks:\n"
                "        - {metric: latency_p99, max_ratio: 1.5}\n"),
            "conveyor.yaml:6: checks: a shadow cannot be judged on latency_p99: its copies are "
            "batched and compared at a lower priority than the answers, so their latency says "
            "nothing of the candidate's",
            "judge latency with a canary",
        ),
        (env("    serve: {candidate: elsewhere}\n"), "conveyor.yaml:4: candidate: 'elsewhere' "
         "is not one of auto, process, inline", None),
    ],
)  # fmt: skip
def test_each_mistake_names_its_line_and_the_fix(text: str, message: str, hint: str | None) -> None:
    error = one_error(text)
    assert error.message == message
    if hint is not None:
        assert error.hint is not None and hint in error.hint, error.hint


def test_every_mistake_of_every_environment_comes_in_one_error() -> None:
    text = (
        "deploy:\n"
        "  prod:\n"
        "    model: clf\n"
        "    target: kubernets\n"  # 4
        "    strategy:\n"
        "      canary:\n"
        "        steps:\n"
        "          - {wieght: 10}\n"  # 8
        "    analysis:\n"
        "      intervl: 1s\n"  # 10
        "      checks:\n"
        "        - {metric: error_rat, max_increase: 0.01}\n"  # 12
        "    webhooks:\n"
        "      - {url: 'ftp://x', events: [promotd]}\n"  # 14
        "  staging:\n"
        "    model: clf\n"
        "    serve: {prot: 1}\n"  # 17
    )
    found = errors(text)
    lines = [config_line(e) for e in found]
    assert lines == sorted(lines) == [4, 8, 10, 12, 14, 14, 17]
    hints = " ".join(e.hint or "" for e in found)
    for word in ("kubernetes", "weight", "interval", "error_rate", "promoted", "port"):
        assert f"did you mean '{word}'?" in hints


def config_line(error: ConfigError) -> int:
    return int(error.message.split(":")[1])


# ------------------------------------------------------------------------------ the project


def test_environments_are_read_from_the_project(tmp_path: Path) -> None:
    assert config.environments(tmp_path) == {}
    (tmp_path / "conveyor.yaml").write_text("deploy:\n  production: {model: clf}\n")
    assert config.environment(tmp_path, "production").model == "clf"


def test_an_unknown_environment_suggests_the_nearest(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "deploy:\n  production: {model: clf}\n  staging: {model: clf}\n"
    )
    with pytest.raises(UnknownEnvironment) as info:
        config.environment(tmp_path, "prodution")
    assert info.value.message == "no environment 'prodution' under deploy: in conveyor.yaml"
    assert info.value.hint == "did you mean 'production'?"
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    with pytest.raises(UnknownEnvironment) as info:
        config.environment(tmp_path, "qa")
    assert info.value.hint == "environments: production, staging"


def test_without_a_deploy_section_the_hint_shows_one(tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvironment) as info:
        config.environment(tmp_path, "production")
    assert info.value.hint is not None and "deploy:" in info.value.hint


def test_conveyor_check_validates_the_section(tmp_path: Path) -> None:
    from conveyor.ci import sections

    (tmp_path / "conveyor.yaml").write_text("deploy:\n  prod:\n    model: clf\n    modle: x\n")
    with pytest.raises(ConfigError) as info:
        sections.check(tmp_path)
    assert info.value.message == "conveyor.yaml:4: environment 'prod' has no key 'modle'"
    (tmp_path / "conveyor.yaml").write_text("deploy:\n  prod: {model: clf}\n")
    sections.check(tmp_path)


def test_conveyor_check_names_the_mistake_and_exits_2(project: Project) -> None:
    project.write("conveyor.yaml", "deploy:\n  prod:\n    model: clf\n    strategy: {canery: {}}\n")
    result = project.run("check")
    assert result.code == 2
    assert "conveyor.yaml:4: strategy has no key 'canery'" in result.err
    assert "did you mean 'canary'?" in result.err

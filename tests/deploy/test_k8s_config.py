"""The kubernetes: block of an environment and strategy.kserve: values with their defaults,
and every mistake with its line, its key and the fix."""

from __future__ import annotations

import pytest

from conveyor.deploy import config
from conveyor.deploy.config import Environment
from conveyor.deploy.k8s_config import Autoscale, Kubernetes, Resources
from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import ConfigErrors


def parse(text: str) -> dict[str, Environment]:
    doc = yamlio.load(text, "conveyor.yaml")
    return config.parse(doc.data["deploy"], doc)


def cluster(body: str, strategy: str = "") -> str:
    """Environment 'prod' of model clf with a kubernetes: block (``body``, indented by 6)."""
    head = "deploy:\n  prod:\n    model: clf\n    target: kubernetes\n"
    return head + (f"    strategy: {strategy}\n" if strategy else "") + "    kubernetes:\n" + body


def errors(text: str) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    error = info.value
    return list(error.parts) if isinstance(error, ConfigErrors) else [error]


def test_without_a_block_an_environment_gets_the_documented_defaults() -> None:
    prod = parse("deploy:\n  prod: {model: clf}\n")["prod"]
    assert prod.kubernetes == Kubernetes()
    assert prod.kubernetes == Kubernetes(
        namespace="default", name="", image="", replicas=2, resources=Resources("500m", "1Gi"),
        autoscale=Autoscale(2, 10, 70), service_monitor=True, read_only_root=True, argo=True,
        env=(), secret="", secret_env=(), analysis_url="",
    )  # fmt: skip
    assert prod.strategy.kserve is False


def test_every_key_reads_into_the_value() -> None:
    body = (
        "      namespace: team-a\n      name: churn\n      image: 'reg.example/churn:{version}'\n"
        "      replicas: 4\n      resources: {cpu: 2, memory: 4Gi}\n"
        "      autoscale: {max: 8, cpu_percent: 60}\n      service_monitor: false\n"
        "      read_only_root: false\n      argo: false\n"
        "      env: {LOG_LEVEL: debug, BATCH: 16, FAST: true}\n"
        "      secret: churn-secrets\n      secret_env: [CONVEYOR_DB, CONVEYOR_ADMIN_TOKEN]\n"
        "      analysis_url: http://conveyor.ops:8080/deployments/prod\n"
    )
    prod = parse(cluster(body, "{canary: {steps: [{weight: 5}]}, kserve: true}"))["prod"]
    assert prod.target == "kubernetes" and prod.strategy.kserve
    assert prod.kubernetes == Kubernetes(
        namespace="team-a", name="churn", image="reg.example/churn:{version}", replicas=4,
        resources=Resources("2", "4Gi"), autoscale=Autoscale(4, 8, 60), service_monitor=False,
        read_only_root=False, argo=False,
        env=(("LOG_LEVEL", "debug"), ("BATCH", "16"), ("FAST", "true")),
        secret="churn-secrets", secret_env=("CONVEYOR_DB", "CONVEYOR_ADMIN_TOKEN"),
        analysis_url="http://conveyor.ops:8080/deployments/prod",
    )  # fmt: skip


def test_autoscale_false_is_a_fixed_number_of_replicas() -> None:
    prod = parse(cluster("      replicas: 3\n      autoscale: false\n"))["prod"]
    assert prod.kubernetes.autoscale is None and prod.kubernetes.replicas == 3
    assert parse(cluster("      autoscale: true\n"))["prod"].kubernetes.autoscale == Autoscale()


@pytest.mark.parametrize(
    ("body", "line", "message", "hint"),
    [
        ("      namespce: ml\n", 6, "kubernetes has no key 'namespce'", "did you mean 'namespace'"),
        ("      namespace: Team_A\n", 6, "'Team_A' is not a Kubernetes name", "lowercase"),
        ("      name: 9lives\n", 6, "'9lives' is not a Kubernetes name", "from a letter"),
        ("      image: 'reg/clf:{vers}'\n", 6, "is not an image reference", "{version}"),
        ("      image: 'reg/c lf:1'\n", 6, "is not an image reference", None),
        ("      replicas: 0\n", 6, "replicas: at least 1, not 0", None),
        ("      resources: {cpu: lots}\n", 6, "cpu: 'lots' is not a quantity", "500m"),
        ("      resources: {memroy: 1Gi}\n", 6, "resources has no key 'memroy'", "'memory'"),
        ("      autoscale: {min: 5, max: 4}\n", 6, "min 5 is more than max 4", None),
        ("      autoscale: {maximum: 4}\n", 6, "autoscale has no key 'maximum'", "'max'"),
        ("      service_monitor: yes please\n", 6, "service_monitor: expected true or false",
         None),
        ("      env: {DB_PASSWORD: hunter2}\n", 6, "DB_PASSWORD looks like a secret",
         "secret_env: [DB_PASSWORD]"),
        ("      env: {LOG-LEVEL: x}\n", 6, "'LOG-LEVEL' is not an environment variable", None),
        ("      env: {A: [1]}\n", 6, "env: A: a text or a number", None),
        ("      secret_env: [postgresql://u:p@db/x]\n", 6, "is not an environment variable",
         "never their values"),
        ("      analysis_url: conveyor:8080\n", 6, "is not an http(s) URL", None),
        ("      env: {DB_URL: 'postgresql://u:hunter2@db/x'}\n", 6, "DB_URL holds a password",
         "secret_env: [DB_URL]"),
        ("      analysis_url: 'http://u:hunter2@conveyor:8080'\n", 6, "holds a password", None),
    ],
)  # fmt: skip
def test_each_mistake_names_its_line_key_and_fix(
    body: str, line: int, message: str, hint: str | None
) -> None:
    (error,) = errors(cluster(body))
    assert error.message.startswith(f"conveyor.yaml:{line}: "), error.message
    assert message in error.message
    if hint is not None:
        assert error.hint is not None and hint in error.hint, error.hint


def test_all_mistakes_come_at_once_in_line_order() -> None:
    body = (
        "      namespce: ml\n      resources: {cpu: lots, memroy: 1Gi}\n      env: {API_TOKEN: x}\n"
    )
    found = errors(cluster(body))
    lines = [int(e.message.split(":")[1]) for e in found]
    assert lines == sorted(lines) and len(found) == 4, [e.message for e in found]


def test_kserve_carries_out_a_canary_only() -> None:
    (error,) = errors(cluster("      namespace: ml\n", "{blue_green: {}, kserve: true}"))
    assert error.message.startswith("conveyor.yaml:5: ")
    assert "KServe carries out a canary" in error.message and "blue_green" in error.message
    (error,) = errors(
        cluster("      namespace: ml\n", "{canary: {steps: [{weight: 5}]}, kserve: 1}")
    )
    assert "kserve: expected true or false" in error.message
    (error,) = errors(
        cluster("      namespace: ml\n", "{canary: {steps: [{weight: 5}]}, ksrv: true}")
    )
    assert error.hint is not None and "kserve" in error.hint


def test_the_example_of_docs_kubernetes_md_reads() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    start = text.index("    deploy:\n")
    block = text[start : text.index("\n\n", start)]
    lines = [line[4:] for line in block.splitlines()]
    prod = parse("\n".join(lines) + "\n")["production"]
    assert prod.kubernetes.image == "registry.example/ml/{model}:{version}"
    assert prod.kubernetes.secret_env == ("CONVEYOR_DB",) and prod.kubernetes.namespace == "ml"

"""An environment as Kubernetes manifests: which kinds for which strategy, each valid against
its schema (offline), and the semantics that matter: the probes, the image, the analysis URL and
verdicts, the weights and pauses of deploy:, and no secret value anywhere."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from conveyor.deploy import config
from conveyor.deploy.config import Environment
from conveyor.deploy.k8s_rollouts import go_duration
from conveyor.deploy.kubernetes import image_reference, render, resource_name
from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from tests.deploy.k8s_schemas import argo_metric_problems, core_problems, problems

CANARY = """\
deploy:
  production:
    model: clf
    target: kubernetes
    serve: {port: 9000, workers: 2}
    strategy:
      canary:
        steps: [{weight: 10}, {pause: 30s}, {weight: 50}, {pause: }, {weight: 100}]
    analysis: {interval: 2s, deadline: 1m, failure_limit: 2}
    kubernetes:
      namespace: ml
      resources: {cpu: 250m, memory: 512Mi}
      autoscale: {min: 3, max: 6, cpu_percent: 80}
      env: {LOG_LEVEL: info, BATCH: 32}
      secret_env: [CONVEYOR_DB]
    webhooks:
      - {url: "https://hooks.example/x", secret_env: DEPLOY_HOOK_SECRET}
"""


def parse(text: str, name: str = "production") -> Environment:
    doc = yamlio.load(text, "conveyor.yaml")
    return config.parse(doc.data["deploy"], doc)[name]


def env(strategy: str, kubernetes: str = "{namespace: ml}") -> Environment:
    return parse(
        f"deploy:\n  production:\n    model: clf\n    strategy: {strategy}\n"
        f"    kubernetes: {kubernetes}\n"
    )


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in manifests:
        out.setdefault(m["kind"], []).append(m)
    return out


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(manifests)[kind]
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


STRATEGIES = {
    "canary": ("{canary: {steps: [{weight: 20}, {pause: 1m}, {weight: 100}]}}", "{}"),
    "blue_green": ("blue_green", "{}"),
    "ab": ("{ab: {split: 30}}", "{}"),
    "shadow": ("shadow", "{}"),
    "canary-no-argo": ("{canary: {steps: [{weight: 20}]}}", "{argo: false}"),
    "kserve": ("{canary: {steps: [{weight: 20}]}, kserve: true}", "{}"),
    "fixed": ("{canary: {steps: [{weight: 20}]}}", "{autoscale: false, service_monitor: false}"),
}
KINDS = {
    "canary": ["ConfigMap", "Service", "AnalysisTemplate", "Rollout", "HorizontalPodAutoscaler",
               "PodDisruptionBudget", "ServiceMonitor"],
    "blue_green": ["ConfigMap", "Service", "Service", "AnalysisTemplate", "Rollout",
                   "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"],
    "ab": ["ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
           "PodDisruptionBudget", "ServiceMonitor"],
    "kserve": ["ConfigMap", "InferenceService"],
    "fixed": ["ConfigMap", "Service", "AnalysisTemplate", "Rollout", "PodDisruptionBudget"],
}  # fmt: skip
KINDS["shadow"] = KINDS["canary-no-argo"] = KINDS["ab"]


@pytest.mark.parametrize("case", list(STRATEGIES))
def test_each_strategy_renders_its_kinds_and_each_is_valid(case: str) -> None:
    strategy, cluster = STRATEGIES[case]
    manifests = render(env(strategy, cluster), 3)
    assert [m["kind"] for m in manifests] == KINDS[case]
    for m in manifests:
        assert problems(m) == [], (m["kind"], problems(m))
        assert m["metadata"]["namespace"] == "default"
        assert m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "conveyor"


def test_the_full_example_is_valid_and_means_what_deploy_says() -> None:
    manifests = render(parse(CANARY), 4)
    for m in manifests:
        assert problems(m) == [], (m["kind"], problems(m))
    rollout = one(manifests, "Rollout")
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    assert rollout["metadata"] == {
        "name": "clf-production",
        "namespace": "ml",
        "labels": rollout["metadata"]["labels"],
    }
    # the steps mirror deploy:, a gate of conveyor's analysis after each weight below 100
    gate = {"analysis": {"templates": [{"templateName": "clf-production-analysis"}]}}
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 10}, gate, {"pause": {"duration": "30s"}},
        {"setWeight": 50}, gate, {"pause": {}}, {"setWeight": 100},
    ]  # fmt: skip
    # the pods: image, port, probes, resources, the locked-down security context
    spec = pod_spec(rollout)
    (server,) = spec["containers"]
    assert server["image"] == "conveyor-clf:4" == image_reference("clf", 4)
    assert server["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert server["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert server["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert {"name": "CONVEYOR_VERSION", "value": "4"} in server["env"]
    # plain settings in the ConfigMap, the server bound to the pod's address
    cm = one(manifests, "ConfigMap")
    assert cm["data"] == {
        "CONVEYOR_ENV": "production", "CONVEYOR_HOST": "0.0.0.0",
        "CONVEYOR_PORT": "9000", "CONVEYOR_WORKERS": "2", "LOG_LEVEL": "info", "BATCH": "32",
    }  # fmt: skip
    assert server["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    # the image serves the package baked into it (conveyor package), its log on a volume
    from conveyor.deploy.container import LOG_DIR, SERVE_ENV

    assert "CONVEYOR_MODEL" not in cm["data"] and SERVE_ENV["CONVEYOR_LOG_DIR"] == LOG_DIR
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert mounts[LOG_DIR] == "predictions" and mounts["/tmp"] == "tmp"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["predictions"] == {"name": "predictions", "emptyDir": {}}
    # the Service, the autoscaler on the Rollout, the budget, the scrape of /metrics
    svc = one(manifests, "Service")
    assert svc["spec"]["selector"] == rollout["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == 9000
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "clf-production"
    }  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert rollout["spec"]["replicas"] == 3
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_the_analysis_template_asks_conveyor_and_maps_its_verdicts() -> None:
    manifests = render(parse(CANARY), 4)
    (metric,) = one(manifests, "AnalysisTemplate")["spec"]["metrics"]
    web = metric["provider"]["web"]
    # the environment's own Service, in the cluster, at conveyor's analysis endpoint
    svc = one(manifests, "Service")["metadata"]
    assert web["url"] == f"http://{svc['name']}.ml.svc.cluster.local:9000/deployments/production"
    assert web["jsonPath"] == "{$.verdict}" and web["method"] == "GET"
    assert metric["interval"] == "2s"
    assert metric["count"] == 30 == metric["inconclusiveLimit"]  # a minute of 2 s intervals
    assert metric["failureLimit"] == 1  # Argo fails past its limit; conveyor aborts at 2
    assert metric["consecutiveSuccessLimit"] == 1
    assert argo_metric_problems(metric) == []

    def holds(condition: str, result: str | None) -> bool:
        """An expr condition of the form ``result == "word"``, as Argo evaluates it."""
        match = re.fullmatch(r'result == "(\w+)"', condition)
        assert match is not None, condition
        return result == match[1]

    def measure(verdict: str | None) -> str:
        """Argo's EvaluateResult over the two conditions (utils/evaluate/evaluate.go)."""
        if holds(metric["failureCondition"], verdict):
            return "Failed"
        return "Successful" if holds(metric["successCondition"], verdict) else "Inconclusive"

    assert measure("pass") == "Successful"
    assert measure("fail") == "Failed"
    assert measure("inconclusive") == "Inconclusive"  # neither: Argo measures again
    assert measure(None) == "Inconclusive"  # no analysis yet


def test_blue_green_has_an_active_and_a_preview_service_and_analysis_before_promotion() -> None:
    manifests = render(env("blue_green"), 2)
    names = [s["metadata"]["name"] for s in by_kind(manifests)["Service"]]
    assert names == ["clf-production", "clf-production-preview"]
    strategy = one(manifests, "Rollout")["spec"]["strategy"]
    assert strategy == {
        "blueGreen": {
            "activeService": "clf-production",
            "previewService": "clf-production-preview",
            "autoPromotionEnabled": True,
            "prePromotionAnalysis": {"templates": [{"templateName": "clf-production-analysis"}]},
        }
    }


def test_kserve_serves_the_image_as_a_custom_container_with_the_first_weight() -> None:
    strategy = "{canary: {steps: [{pause: 10s}, {weight: 15}, {weight: 60}]}, kserve: true}"
    manifests = render(env(strategy, "{image: 'reg.example/ml/{model}:v{version}'}"), 7)
    isvc = one(manifests, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 15
    (served,) = predictor["containers"]
    assert served["name"] == "kserve-container"
    assert served["image"] == "reg.example/ml/clf:v7"
    assert served["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert predictor["minReplicas"] == 2 and predictor["scaleMetric"] == "cpu"
    assert isvc["metadata"]["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    assert problems(isvc) == []


def test_ab_and_shadow_are_a_deployment_that_follows_the_record() -> None:
    deployment = one(render(env("{ab: {split: 30}}"), 5), "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert pod_spec(deployment)["containers"][0]["image"] == "conveyor-clf:5"


def test_no_secret_value_is_written_only_references() -> None:
    manifests = render(parse(CANARY), 4)
    text = json.dumps(manifests)
    server = pod_spec(one(manifests, "Rollout"))["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in server["env"] if "valueFrom" in e}
    assert refs == {
        "CONVEYOR_DB": {"name": "clf-production-secrets", "key": "CONVEYOR_DB"},
        "DEPLOY_HOOK_SECRET": {"name": "clf-production-secrets", "key": "DEPLOY_HOOK_SECRET"},
    }
    assert "Secret" not in [m["kind"] for m in manifests]
    for m in manifests:
        if m["kind"] == "ConfigMap":
            assert not {"CONVEYOR_DB", "DEPLOY_HOOK_SECRET"} & set(m["data"])
    assert '"value": "whsec' not in text and "postgresql://" not in text


def test_the_validators_refuse_what_a_cluster_refuses() -> None:
    """A negative control: the checks above would see a misspelt or misplaced field."""
    manifests = render(parse(CANARY), 4)
    rollout = json.loads(json.dumps(one(manifests, "Rollout")))
    rollout["spec"]["strategy"]["canary"]["steps"][0] = {"setWieght": 10}
    assert any("setWieght" in p for p in problems(rollout))
    template = json.loads(json.dumps(one(manifests, "AnalysisTemplate")))
    template["spec"]["metrics"][0]["provider"]["web"]["jsonpath"] = "{$.verdict}"
    assert any("jsonpath" in p for p in problems(template))
    svc = json.loads(json.dumps(one(manifests, "Service")))
    svc["spec"]["port"] = 80
    assert core_problems(svc) != []
    # the Rollout's pod template is a core PodTemplateSpec: checked as one, strictly
    pod = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"},
           "template": one(manifests, "Rollout")["spec"]["template"]}  # fmt: skip
    assert core_problems(pod) == []


def test_names_and_images() -> None:
    assert image_reference("Churn_Model", 12) == "conveyor-churn_model:12"
    assert resource_name("clf", "production") == "clf-production"
    assert resource_name("Churn_Model.v2", "prod_eu") == "churn-model-v2-prod-eu"
    assert resource_name("2fast", "prod") == "m-2fast-prod"
    assert len(resource_name("m" * 200, "production")) <= 40
    named = render(env("shadow", "{name: churn, namespace: team-a, image: reg/x@sha256:ab}"), 1)
    assert {m["metadata"]["name"] for m in named} == {"churn", "churn-config"}
    assert pod_spec(one(named, "Deployment"))["containers"][0]["image"] == "reg/x@sha256:ab"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (90, "1m30s"), (600, "10m"), (3600, "1h"), (0.5, "500ms"), (86400, "24h"),
     (1.25, "1250ms"), (0, "0s")],
)  # fmt: skip
def test_durations_as_go_reads_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_a_weight_argo_cannot_set_is_an_error_that_says_so() -> None:
    with pytest.raises(ConfigError) as info:
        render(env("{canary: {steps: [{weight: 12.5}]}}"), 1)
    assert "whole percent" in info.value.message and "step 1" in info.value.message
    assert info.value.hint == "use 12 or 13"

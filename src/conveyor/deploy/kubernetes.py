"""An environment of ``deploy:`` as Kubernetes manifests (plain dicts, in the order a cluster
takes them): which objects, by strategy.

    canary, blue_green   ConfigMap, Service(s), AnalysisTemplate, Rollout (Argo Rollouts),
                         HorizontalPodAutoscaler, PodDisruptionBudget, ServiceMonitor
    ab, shadow           the same with a Deployment and no AnalysisTemplate: the split is
                         conveyor's own router in every pod, following the environment's record
                         (so is a canary with ``kubernetes: {argo: false}``)
    strategy.kserve      ConfigMap and a KServe InferenceService

    >>> from conveyor.deploy.config import Environment
    >>> [m["kind"] for m in render(Environment("production", "clf"), 3)][:4]
    ['ConfigMap', 'Service', 'AnalysisTemplate', 'Rollout']
    >>> image_reference("Churn", 3)
    'conveyor-churn:3'

Pure: no cluster, no files. :mod:`conveyor.deploy.k8s_flows` resolves the version, writes the
files and applies them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from conveyor.deploy import k8s_core as core
from conveyor.deploy import k8s_kserve, k8s_rollouts
from conveyor.deploy.image import image_reference  # the name `conveyor package` builds
from conveyor.deploy.k8s_core import Manifest, Plan

if TYPE_CHECKING:
    from conveyor.deploy.config import Environment

__all__ = ["Manifest", "Plan", "analysis_url", "image_reference", "plan", "render",
           "resource_name"]  # fmt: skip


def resource_name(model: str, env: str) -> str:
    """``<model>-<env>`` as a Kubernetes name: lowercase letters, digits and '-', from a
    letter, at most 40 characters (room for the suffixes conveyor adds)."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{model}-{env}".lower()).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}"
    return name[:40].rstrip("-")


def analysis_url(name: str, namespace: str, port: int, env: str) -> str:
    """Where Argo asks for conveyor's verdict: the environment's Service, in the cluster."""
    return f"http://{name}.{namespace}.svc.cluster.local:{port}/deployments/{env}"


def plan(env: Environment, version: int, image: str | None = None) -> Plan:
    """What the manifests of ``env`` at ``version`` need; ``image`` overrides the
    environment's ``kubernetes.image`` (itself ``conveyor-<model>:<version>`` by default)."""
    cluster = env.kubernetes
    name = cluster.name or resource_name(env.model, env.name)
    chosen = image or cluster.image or image_reference(env.model, version)
    chosen = chosen.replace("{model}", env.model.lower()).replace("{version}", str(version))
    hooks = tuple(h.secret_env for h in env.webhooks if h.secret_env)
    return Plan(
        env=env.name, model=env.model, version=version, image=chosen, name=name,
        port=env.port, workers=env.workers, cluster=cluster,
        secret_env=tuple(dict.fromkeys((*cluster.secret_env, *hooks))),
        analysis_url=cluster.analysis_url
        or analysis_url(name, cluster.namespace, env.port, env.name),
    )  # fmt: skip


def render(env: Environment, version: int, image: str | None = None) -> list[Manifest]:
    """The manifests of ``env`` serving ``version`` (see the module's table)."""
    p = plan(env, version, image)
    strategy = env.strategy
    if strategy.kserve:
        return [core.config_map(p), k8s_kserve.inference_service(p, strategy.steps)]
    argo = env.kubernetes.argo and strategy.kind in ("canary", "blue_green")
    out: list[Manifest | None] = [core.config_map(p), core.service(p)]
    if argo:
        if strategy.kind == "blue_green":
            out.append(core.service(p, k8s_rollouts.preview_name(p)))
        out.append(k8s_rollouts.analysis_template(p, env.analysis))
        workload = (
            k8s_rollouts.blue_green(p)
            if strategy.kind == "blue_green"
            else k8s_rollouts.canary(p, strategy.steps)
        )
    else:
        workload = core.deployment(p)
    out.append(workload)
    target = {"apiVersion": workload["apiVersion"], "kind": workload["kind"], "name": p.name}
    out += [core.autoscaler(p, target), core.disruption_budget(p), core.service_monitor(p)]
    return [m for m in out if m is not None]

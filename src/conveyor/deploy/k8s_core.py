"""The core Kubernetes objects of an environment, as plain dicts: the pod template (probes,
resources, a locked-down security context), Deployment, Service, HorizontalPodAutoscaler,
PodDisruptionBudget, ServiceMonitor and the ConfigMap of plain settings.

Pure: a :class:`Plan` in, manifests out. :mod:`conveyor.deploy.kubernetes` makes the plan
from an environment and a version and picks the objects; the Argo Rollouts and KServe kinds
are in :mod:`conveyor.deploy.k8s_rollouts` and :mod:`conveyor.deploy.k8s_kserve`.

The server in the image is configured by environment variables: the environment's plain
settings come from the ConfigMap (``CONVEYOR_ENV``, ``CONVEYOR_HOST``, ``CONVEYOR_PORT``,
``CONVEYOR_WORKERS`` and the user's ``env:``; never ``CONVEYOR_MODEL``: each image serves the
package ``conveyor package`` baked into it, so a canary is a pod of the new version's image),
the prediction log goes to an emptyDir at the image's log folder (the root filesystem is
read-only), the version from the pod
template (``CONVEYOR_VERSION``: stable and canary pods share the ConfigMap), and each
``secret_env`` name from the environment's Secret by reference. No secret value is ever
written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from conveyor.deploy.container import HEALTH_PATH as READY
from conveyor.deploy.container import LOG_DIR, UID  # the image's user and its log folder
from conveyor.deploy.k8s_config import Kubernetes

Manifest = dict[str, Any]

LIVE = "/v2/health/live"
METRICS = "/metrics"
PART_OF = "conveyor"


@dataclass(frozen=True)
class Plan:
    """Everything the manifests of one environment need, resolved."""

    env: str
    model: str
    version: int
    image: str
    name: str
    port: int
    workers: int
    cluster: Kubernetes
    secret_env: tuple[str, ...]  # the cluster's and the webhooks' variable names
    analysis_url: str

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    @property
    def config_name(self) -> str:
        return f"{self.name}-config"

    @property
    def secret_name(self) -> str:
        return self.cluster.secret or f"{self.name}-secrets"

    @property
    def replicas(self) -> int:
        scale = self.cluster.autoscale
        return scale.min if scale is not None else self.cluster.replicas


def selector(plan: Plan) -> dict[str, str]:
    """The labels that pick the environment's pods, whichever version they run."""
    return {"app.kubernetes.io/name": plan.name, "app.kubernetes.io/instance": plan.env}


def labels(plan: Plan) -> dict[str, str]:
    return {
        **selector(plan),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": PART_OF,
        "conveyor/model": label_value(plan.model),
    }


def label_value(text: str) -> str:
    """``text`` as a label value: at most 63 characters, alphanumeric at both ends."""
    import re

    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return value.strip("-_.") or "x"


def metadata(plan: Plan, name: str | None = None) -> dict[str, Any]:
    return {"name": name or plan.name, "namespace": plan.namespace, "labels": labels(plan)}


def settings(plan: Plan) -> dict[str, str]:
    """The ConfigMap's data: the server's plain settings, then the user's ``env:``."""
    return {
        "CONVEYOR_ENV": plan.env,
        "CONVEYOR_HOST": "0.0.0.0",  # inside a pod: the Service reaches it on the pod's IP
        "CONVEYOR_PORT": str(plan.port),
        "CONVEYOR_WORKERS": str(plan.workers),
        **dict(plan.cluster.env),
    }


def config_map(plan: Plan) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(plan, plan.config_name),
        "data": settings(plan),
    }


def container(plan: Plan, name: str = "server") -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": "CONVEYOR_VERSION", "value": str(plan.version)}]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": plan.secret_name, "key": var}}}
        for var in plan.secret_env
    ]
    res = plan.cluster.resources
    return {
        "name": name,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": plan.config_name}}],
        "env": env,
        "resources": {
            "requests": {"cpu": res.cpu, "memory": res.memory},
            "limits": {"memory": res.memory},  # no CPU limit: throttling would skew latency
        },
        "readinessProbe": _probe(READY, period=5),
        "livenessProbe": {**_probe(LIVE, period=10), "initialDelaySeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": plan.cluster.read_only_root,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "predictions", "mountPath": LOG_DIR},
        ],
    }


def _probe(path: str, *, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_template(plan: Plan) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {**labels(plan), "app.kubernetes.io/version": str(plan.version)},
            # a changed ConfigMap rolls the pods, as a changed image does
            "annotations": {"conveyor/config-hash": config_hash(plan)},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security(),
            "terminationGracePeriodSeconds": 30,
            "containers": [container(plan)],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "predictions", "emptyDir": {}},
            ],
        },
    }


def config_hash(plan: Plan) -> str:
    data = json.dumps(settings(plan), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def deployment(plan: Plan) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan),
        "spec": {
            "replicas": plan.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(plan)},
            # never fewer ready pods than asked for while a new version comes up
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": pod_template(plan),
        },
    }


def service(plan: Plan, name: str | None = None) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(plan),
            "ports": [{"name": "http", "port": plan.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(plan: Plan, target: dict[str, str]) -> Manifest | None:
    """A HorizontalPodAutoscaler of ``target`` (apiVersion, kind, name); None without one."""
    scale = plan.cluster.autoscale
    if scale is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(plan),
        "spec": {
            "scaleTargetRef": target,
            "minReplicas": scale.min,
            "maxReplicas": scale.max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scale.cpu_percent},
                    },
                }
            ],
        },
    }


def disruption_budget(plan: Plan) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(plan)}},
    }


def service_monitor(plan: Plan) -> Manifest | None:
    """Prometheus Operator's ServiceMonitor: every pod's ``/metrics`` through the Services."""
    if not plan.cluster.service_monitor:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(plan),
        "spec": {
            "selector": {"matchLabels": selector(plan)},
            "namespaceSelector": {"matchNames": [plan.namespace]},
            "endpoints": [{"port": "http", "path": METRICS, "interval": "15s"}],
        },
    }

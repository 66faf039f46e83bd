"""An environment as a KServe ``InferenceService`` (serving.kserve.io/v1beta1): the packaged
image as the predictor's custom container, which speaks the Open Inference Protocol v2 itself
(``/v2/health/ready``, ``/v2/models/{name}/infer``), and the canary's first weight as
``canaryTrafficPercent``.

KServe splits traffic between the last revision that served everything and the new one: the
new revision takes ``canaryTrafficPercent`` until it is promoted (the field set to 100 or
removed). KServe makes the Service and the autoscaler itself, so none are rendered; Prometheus
finds ``/metrics`` through KServe's scraping annotations.

Pure: a :class:`~conveyor.deploy.k8s_core.Plan` and the steps in, one manifest out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.deploy.k8s_core import METRICS, Manifest, Plan, container, metadata, pod_security
from conveyor.deploy.k8s_rollouts import whole_percent

if TYPE_CHECKING:
    from conveyor.deploy.config import Step

API = "serving.kserve.io/v1beta1"
CONTAINER = "kserve-container"  # the name KServe gives the serving container


def first_weight(steps: tuple[Step, ...], env: str) -> int | None:
    for number, step in enumerate(steps, 1):
        if step.weight is not None:
            return whole_percent(step.weight, env, number)
    return None


def inference_service(plan: Plan, steps: tuple[Step, ...]) -> Manifest:
    served = container(plan, CONTAINER)
    predictor: dict[str, Any] = {}
    scale = plan.cluster.autoscale
    if scale is None:
        predictor |= {"minReplicas": plan.replicas, "maxReplicas": plan.replicas}
    else:
        predictor |= {
            "minReplicas": scale.min,
            "maxReplicas": scale.max,
            "scaleMetric": "cpu",
            "scaleTarget": scale.cpu_percent,
        }
    weight = first_weight(steps, plan.env)
    if weight is not None:
        predictor["canaryTrafficPercent"] = weight
    predictor |= {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": [served],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    meta = metadata(plan)
    meta["annotations"] = {
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "prometheus.kserve.io/port": str(plan.port),
        "prometheus.kserve.io/path": METRICS,
    }
    return {"apiVersion": API, "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor}}  # fmt: skip

"""An environment's strategy as Argo Rollouts objects: a ``Rollout`` (argoproj.io/v1alpha1)
whose steps mirror ``deploy:``, and an ``AnalysisTemplate`` whose ``web`` metric asks
conveyor's own analysis (``GET /deployments/{env}``) for its verdict.

conveyor's verdicts map onto an Argo measurement one for one:

    pass          successCondition   result == "pass"
    fail          failureCondition   result == "fail"
    inconclusive  neither            (no analysis yet, too little traffic: Argo measures again)

and the environment's analysis onto the metric's limits:

    interval       interval (and initialDelay: the first verdict judges the new weight)
    failure_limit  failureLimit = failure_limit - 1 (Argo fails past its limit, conveyor at it)
    deadline       count = deadline / interval; inconclusiveLimit = count, so that inconclusive
                   measurements alone never end the run early; a run that reaches its count
                   without a pass is Inconclusive, and Argo pauses the rollout for a person
    (a pass)       consecutiveSuccessLimit = 1: the first pass completes the step

A canary's ``{weight: W}`` is ``setWeight: W`` then an inline ``analysis`` step with the
template (a weight completes when an analysis passes at it, as conveyor's controller does);
``{weight: 100}`` is ``setWeight: 100`` alone; ``{pause: 30s}`` is ``pause: {duration: 30s}``
and ``{pause: }`` is ``pause: {}``. A blue-green is Argo's ``blueGreen`` with an active and a
preview Service and the template as its pre-promotion analysis.

Pure: a :class:`~conveyor.deploy.k8s_core.Plan` and the environment in, manifests out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from conveyor.deploy.k8s_core import Manifest, Plan, metadata, pod_template, selector
from conveyor.foundation.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.deploy.config import Analysis, Step

API = "argoproj.io/v1alpha1"
METRIC = "conveyor-verdict"
VERDICT_PATH = "{$.verdict}"
PASS = 'result == "pass"'
FAIL = 'result == "fail"'


def template_name(plan: Plan) -> str:
    return f"{plan.name}-analysis"


def preview_name(plan: Plan) -> str:
    return f"{plan.name}-preview"


def analysis_template(plan: Plan, analysis: Analysis) -> Manifest:
    interval = go_duration(analysis.interval)
    failure_limit = analysis.failure_limit - 1
    count = max(math.ceil(analysis.deadline / analysis.interval), failure_limit + 1)
    return {
        "apiVersion": API,
        "kind": "AnalysisTemplate",
        "metadata": metadata(plan, template_name(plan)),
        "spec": {
            "metrics": [
                {
                    "name": METRIC,
                    "interval": interval,
                    "initialDelay": interval,
                    "count": count,
                    "consecutiveSuccessLimit": 1,
                    "failureLimit": failure_limit,
                    "inconclusiveLimit": count,
                    "successCondition": PASS,
                    "failureCondition": FAIL,
                    "provider": {
                        "web": {
                            "method": "GET",
                            "url": plan.analysis_url,
                            "jsonPath": VERDICT_PATH,
                            "timeoutSeconds": 10,
                        }
                    },
                }
            ]
        },
    }


def canary_steps(steps: tuple[Step, ...], template: str, env: str) -> list[dict[str, Any]]:
    """``deploy:``'s canary steps as Argo's."""
    out: list[dict[str, Any]] = []
    for number, step in enumerate(steps, 1):
        if step.weight is not None:
            weight = whole_percent(step.weight, env, number)
            out.append({"setWeight": weight})
            if weight < 100:  # a fresh dict each time: YAML would write a shared one as an alias
                out.append({"analysis": {"templates": [{"templateName": template}]}})
        elif step.pause is None:
            out.append({"pause": {}})  # until `kubectl argo rollouts promote`
        else:
            out.append({"pause": {"duration": go_duration(step.pause)}})
    return out


def whole_percent(weight: float, env: str, number: int) -> int:
    if weight != int(weight):
        raise ConfigError(
            f"deploy: {env}: step {number}: weight {weight:g} is not a whole percent, and "
            "Argo Rollouts and KServe split traffic in whole percents",
            hint=f"use {math.floor(weight)} or {math.ceil(weight)}",
        )
    return int(weight)


def rollout(plan: Plan, strategy: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": API,
        "kind": "Rollout",
        "metadata": metadata(plan),
        "spec": {
            "replicas": plan.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(plan)},
            "template": pod_template(plan),
            "strategy": strategy,
        },
    }


def canary(plan: Plan, steps: tuple[Step, ...]) -> Manifest:
    return rollout(plan, {"canary": {"steps": canary_steps(steps, template_name(plan), plan.env)}})


def blue_green(plan: Plan) -> Manifest:
    return rollout(
        plan,
        {
            "blueGreen": {
                "activeService": plan.name,
                "previewService": preview_name(plan),
                "autoPromotionEnabled": True,  # once the pre-promotion analysis passed
                "prePromotionAnalysis": {"templates": [{"templateName": template_name(plan)}]},
            }
        },
    )


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's time.ParseDuration reads it: ``500ms``, ``30s``, ``1m30s``, ``2h``."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"

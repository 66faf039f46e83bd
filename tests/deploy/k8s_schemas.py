"""Offline checks of rendered manifests, as a cluster would make them: the core kinds with
kubernetes-validate (strict), the custom resources against their projects' published CRD
schemas (tests/deploy/crds/, see its NOTICE.md) with jsonschema, made strict the same way (a
field the schema does not name is refused, as ``kubectl apply --validate=strict`` refuses it),
and the rules Argo Rollouts checks in code on an AnalysisTemplate's metrics."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

CRDS = Path(__file__).parent / "crds"
CUSTOM = {  # (apiVersion, kind) -> the vendored schema's file
    ("argoproj.io/v1alpha1", "Rollout"): "rollout.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "analysistemplate.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}


def strict(schema: Any) -> Any:
    """``schema`` refusing the fields it does not name, except where Kubernetes keeps them
    (``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(file: str) -> Any:
    import jsonschema

    doc = json.loads((CRDS / file).read_text())
    schema = strict(doc["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def custom_problems(manifest: dict[str, Any]) -> list[str]:
    """What the CRD schema of ``manifest``'s kind refuses in it, plus its metadata checked as
    Kubernetes' ObjectMeta."""
    key = (manifest["apiVersion"], manifest["kind"])
    found = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in _validator(CUSTOM[key]).iter_errors(manifest)
    ]
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    return found + core_problems(meta)


def core_problems(manifest: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc).splitlines()[0]]
    return []


def problems(manifest: dict[str, Any]) -> list[str]:
    if (manifest["apiVersion"], manifest["kind"]) in CUSTOM:
        return custom_problems(manifest)
    return core_problems(manifest)


def argo_metric_problems(metric: dict[str, Any]) -> list[str]:
    """The checks Argo Rollouts makes of a metric before running it (ValidateMetric in
    utils/analysis/factory.go), as plain rules."""
    count = int(metric.get("count", 0))
    failure = int(metric.get("failureLimit", 0))
    success = int(metric.get("consecutiveSuccessLimit", 0))
    inconclusive = int(metric.get("inconclusiveLimit", 0))
    out = []
    if success == 0 and failure == -1:
        out.append("failureLimit and consecutiveSuccessLimit cannot both be disabled")
    if count > 0 and success >= 0 and failure >= 0 and count < failure + success:
        out.append("count must be >= failureLimit + consecutiveSuccessLimit")
    if count > 0 and count < inconclusive:
        out.append("count must be >= inconclusiveLimit")
    if count > 1 and not metric.get("interval"):
        out.append("interval must be specified when count > 1")
    if sum(1 for _ in metric["provider"]) != 1:
        out.append("exactly one provider")
    return out

"""The OpenAPI 3.1 document of the server's endpoints, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from conveyor.serve.v2 import DATATYPES

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
_V2_ERRORS = {
    "400": _json(_ref("Error"), "the request is malformed or does not fit the model"),
    "404": _json(_ref("Error"), "no such model or version"),
    "413": _json(_ref("Error"), "the body or the number of rows is over the limit"),
    "503": _json(_ref("Error"), "the model is not ready"),
    "504": _json(_ref("Error"), "the prediction took longer than the timeout"),
}
_MLFLOW_ERRORS = {
    str(code): _json(_ref("ScoringError"), text)
    for code, text in (
        (400, "the request is malformed or does not fit the model"),
        (413, "the body or the number of rows is over the limit"),
        (415, "the content type is neither JSON nor CSV"),
        (503, "the model is not ready"),
        (504, "the prediction took longer than the timeout"),
    )
}


def _model_paths(prefix: str, params: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    return {
        prefix: {
            "get": {
                "tags": [tag],
                "summary": "The model's inputs and outputs",
                "operationId": "model_metadata" + ("_version" if len(params) > 1 else ""),
                "parameters": params,
                "responses": {
                    "200": _json(_ref("ModelMetadata"), "inputs and outputs as v2 tensors"),
                    "404": _V2_ERRORS["404"],
                    "503": _V2_ERRORS["503"],
                },
            }
        },
        prefix + "/ready": {
            "get": {
                "tags": [tag],
                "summary": "Whether the model is loaded",
                "operationId": "model_ready" + ("_version" if len(params) > 1 else ""),
                "parameters": params,
                "responses": {
                    "200": _json(_ref("ModelReady"), "ready"),
                    "404": _V2_ERRORS["404"],
                    "503": _json(_ref("ModelReady"), "not ready"),
                },
            }
        },
        prefix + "/infer": {
            "post": {
                "tags": [tag],
                "summary": "Predict",
                "operationId": "model_infer" + ("_version" if len(params) > 1 else ""),
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("InferenceRequest")}},
                },
                "responses": {
                    "200": _json(_ref("InferenceResponse"), "the model's outputs"),
                    **_V2_ERRORS,
                },
            }
        },
    }


def _form(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A scoring body holding ``key`` (and no other of the four)."""
    return {"type": "object", "required": [key], "properties": {key: schema}}


_RECORD = {"type": "object", "minProperties": 1}


def _get(summary: str, op: str, tag: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"tags": [tag], "summary": summary, "operationId": op, "responses": responses}}


def document(version: str) -> dict[str, Any]:
    v2 = "Open Inference Protocol v2"
    mlflow = "MLflow scoring protocol"
    paths: dict[str, Any] = {
        "/v2/health/live": _get(
            "The server is up", "server_live", v2, {"200": _json(_ref("Live"), "live")}
        ),
        "/v2/health/ready": _get(
            "Every model is loaded",
            "server_ready",
            v2,
            {"200": _json(_ref("Ready"), "ready"), "503": _json(_ref("Ready"), "not ready")},
        ),
        "/v2": _get(
            "The server's name, version and extensions",
            "server_metadata",
            v2,
            {"200": _json(_ref("ServerMetadata"), "server metadata")},
        ),
        **_model_paths("/v2/models/{name}", [_NAME], v2),
        **_model_paths("/v2/models/{name}/versions/{version}", [_NAME, _VERSION], v2),
        "/invocations": {
            "post": {
                "tags": [mlflow],
                "summary": "Predict (the first model served)",
                "operationId": "invocations",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("ScoringRequest")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": _json(_ref("ScoringResponse"), "the predictions, one per row"),
                    **_MLFLOW_ERRORS,
                },
            }
        },
        "/ping": _get(
            "Every model is loaded",
            "ping",
            mlflow,
            {"200": _text("ready"), "503": _text("not ready")},
        ),
        "/health": _get(
            "Every model is loaded",
            "health",
            mlflow,
            {"200": _text("ready"), "503": _text("not ready")},
        ),
        "/version": _get("The server's version", "version", mlflow, {"200": _text("version")}),
        "/metrics": _get(
            "Metrics in Prometheus text format", "metrics", "Operations", {"200": _text("metrics")}
        ),
        "/deployments/{env}": {
            "get": {
                "tags": ["Operations"],
                "summary": "An environment's deployment record and its last analysis",
                "operationId": "deployment",
                "parameters": [
                    {"name": "env", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(_ref("Deployment"), "the record"),
                    "404": _json(_ref("Error"), "no deployment of that environment"),
                },
            }
        },
        "/deployments/{env}/{action}": {
            "post": {
                "tags": ["Operations"],
                "summary": "Steer an environment's rollout (as `conveyor rollout` does)",
                "operationId": "steer",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "env", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": ["promote", "pause", "resume", "abort", "rollback"],
                        },
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "full": {"type": "boolean"},
                                    "reason": {"type": "string", "maxLength": 500},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"type": "object"}, "the record after the action"),
                    "400": _json(_ref("Error"), "a malformed body"),
                    "401": _json(_ref("Error"), "no token, or a wrong one"),
                    "403": _json(_ref("Error"), "this server takes no action (no token set)"),
                    "404": _json(_ref("Error"), "no such action, or a server without actions"),
                    "409": _json(_ref("Error"), "the rollout's state refuses it"),
                },
            }
        },
        "/feedback": {
            "post": {
                "tags": ["Operations"],
                "summary": "True labels for answered requests, by their x-request-id",
                "operationId": "feedback",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Feedback")}},
                },
                "responses": {
                    "200": _json(_ref("FeedbackAccepted"), "labels stored"),
                    "400": _json(_ref("Error"), "a malformed body or item"),
                    "401": _json(_ref("Error"), "no token, or a wrong one"),
                    "403": _json(_ref("Error"), "this server takes no feedback (no token set)"),
                    "413": _json(_ref("Error"), "too many items or bytes"),
                    "503": _json(_ref("Error"), "the labels could not be stored"),
                },
            }
        },
        "/openapi.json": _get(
            "This document", "openapi", "Operations", {"200": _json({"type": "object"}, "OpenAPI")}
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "conveyor model server",
            "version": version,
            "description": (
                "Models from the conveyor registry over the Open Inference Protocol v2 and "
                "MLflow's scoring protocol. Every response has the headers x-request-id, "
                "x-model-version and x-model-role (stable, candidate or shadow)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_TENSOR_DATA = {
    "type": "array",
    "description": (
        "row-major values, flat or nested, of the datatype's kind and range: numbers (integers "
        "for INT and UINT types), true/false for BOOL, strings for BYTES"
    ),
    "items": {"type": ["number", "string", "boolean", "array"]},
}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Label": {
        "type": "object",
        "required": ["id", "label"],
        "properties": {
            "id": {"type": "string", "description": "the x-request-id of the answer"},
            "label": {"type": ["string", "number", "boolean"]},
        },
    },
    "Feedback": {
        "oneOf": [
            {"type": "array", "items": {"$ref": "#/components/schemas/Label"}},
            {
                "type": "object",
                "required": ["feedback"],
                "properties": {
                    "feedback": {"type": "array", "items": {"$ref": "#/components/schemas/Label"}}
                },
            },
        ]
    },
    "FeedbackAccepted": {
        "type": "object",
        "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}},
    },
    "Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
    "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "ModelReady": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "RequestInput": {
        "type": "object",
        "description": (
            "a tensor named like one of the model's inputs (GET /v2/models/{name}), each name "
            "once. With Triton's binary tensor extension (the Inference-Header-Content-Length "
            "header) an input gives parameters.binary_data_size instead of data"
        ),
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {
                "type": "array",
                "maxItems": 32,
                "items": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            },
            "datatype": {
                "type": "string",
                "enum": list(DATATYPES),
            },
            "parameters": {"type": "object"},
            "data": _TENSOR_DATA,
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": _ref("RequestInput"),
            },
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": _TENSOR_DATA,
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
    "ScoringRequest": {
        "description": "exactly one of the four forms",
        "oneOf": [
            _form("dataframe_split", _ref("DataframeSplit")),
            _form("dataframe_records", {"type": "array", "minItems": 1, "items": _RECORD}),
            _form("instances", _ref("Rows")),
            _form("inputs", _ref("Rows")),
        ],
    },
    "DataframeSplit": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "minItems": 1, "items": {"type": "array"}},
        },
    },
    "Rows": {
        "description": "rows (a list of lists or of records), or a mapping of column -> values",
        "oneOf": [
            {"type": "array", "minItems": 1},
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "array"}},
        ],
    },
    "ScoringResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array"}},
    },
    "Deployment": {
        "type": "object",
        "required": ["env", "model", "stable", "candidate", "status", "mode", "weight"],
        "properties": {
            "env": {"type": "string"},
            "model": {"type": "string"},
            "stable": {"type": ["integer", "null"]},
            "candidate": {"type": ["integer", "null"]},
            "status": {
                "type": "string",
                "enum": ["idle", "progressing", "paused", "promoted", "aborted", "rolled_back"],
            },
            "mode": {"type": "string", "enum": ["canary", "ab", "shadow", "blue_green"]},
            "step": {"type": "integer"},
            "weight": {"type": "number", "description": "percent of requests to the candidate"},
            "revision": {"type": "integer"},
            "message": {"type": "string"},
            "analysis": {
                "type": ["object", "null"],
                "description": "the last analysis: its checks, verdict and step",
            },
            "verdict": {"type": ["string", "null"], "enum": ["pass", "fail", "inconclusive", None]},
            "serving": {
                "type": ["object", "null"],
                "description": "what this server answers with now, for the environment it serves",
            },
        },
    },
    "ScoringError": {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    },
}

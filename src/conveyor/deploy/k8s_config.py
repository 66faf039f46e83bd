"""The ``kubernetes:`` block of an environment: how ``conveyor k8s render`` writes it for a
cluster (docs/kubernetes.md explains every key).

    deploy:
      production:
        model: classifier
        target: kubernetes
        strategy: {canary: {steps: [{weight: 10}, {pause: 1m}, {weight: 100}]}}
        kubernetes:
          namespace: ml
          image: registry.example/classifier:{version}    # default conveyor-<model>:<version>
          replicas: 2
          resources: {cpu: 500m, memory: 1Gi}
          autoscale: {min: 2, max: 10, cpu_percent: 70}   # false: a fixed number of replicas
          service_monitor: true
          env: {LOG_LEVEL: info}                          # plain settings: a ConfigMap
          secret_env: [CONVEYOR_DB]                       # names only, from the Secret below
          secret: classifier-production-secrets

:mod:`conveyor.deploy.config` reads the block with :func:`read`, through the same reader as the
rest of the section, so that every mistake names ``conveyor.yaml:LINE``, the key and the
nearest valid key or value. Secret values never go in the file: ``secret_env`` names
variables, and the manifests refer to them in a Secret made on the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from conveyor.foundation import redact

__all__ = ["Autoscale", "Kubernetes", "Resources", "read"]

# RFC 1123 label (a namespace); a name leaves room for the suffixes conveyor adds (-preview...)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Kubernetes' resource.Quantity: 500m, 1.5, 1Gi, 2e3
_QUANTITY = re.compile(
    r"\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?"
)
_SECRETISH = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|CREDENTIAL", re.IGNORECASE)
PLACEHOLDERS = ("{model}", "{version}")


@dataclass(frozen=True)
class Resources:
    """What each pod asks for (requests); memory is also its limit."""

    cpu: str = "500m"
    memory: str = "1Gi"


@dataclass(frozen=True)
class Autoscale:
    min: int = 2
    max: int = 10
    cpu_percent: int = 70


@dataclass(frozen=True)
class Kubernetes:
    namespace: str = "default"
    name: str = ""  # "" -> <model>-<env>, made a valid name
    image: str = ""  # "" -> conveyor-<model>:<version>; {model} and {version} filled in
    replicas: int = 2
    resources: Resources = Resources()
    autoscale: Autoscale | None = Autoscale()
    service_monitor: bool = True
    read_only_root: bool = True
    argo: bool = True  # canary and blue_green through Argo Rollouts; false: a Deployment
    env: tuple[tuple[str, str], ...] = ()  # plain settings, written to a ConfigMap
    secret: str = ""  # "" -> <name>-secrets
    secret_env: tuple[str, ...] = ()  # variable names taken from the Secret
    analysis_url: str = ""  # "" -> the environment's Service, /deployments/<env>


DEFAULT = Kubernetes()

Where = tuple[str, ...]


class Reader(Protocol):
    """What :func:`read` needs of :mod:`conveyor.deploy.config`'s reader."""

    clean: bool

    def error(self, at: Where, message: str, hint: str | None = None) -> None: ...

    def shape(self, part: str, item: Any, at: Where, what: str) -> dict[str, Any] | None: ...


def read(reader: Reader, item: Any, at: Where) -> Kubernetes | None:
    """The ``kubernetes:`` block at ``at`` as a value; None (its mistakes told to ``reader``)
    when it has any."""
    if item is None:
        return DEFAULT
    spec = reader.shape("kubernetes", item, at, "kubernetes")
    if spec is None:
        return None
    ok = reader.clean
    for key, pattern, hint in (
        ("namespace", _LABEL, "lowercase letters, digits and '-', at most 63"),
        ("name", _NAME, "lowercase letters, digits and '-', from a letter, at most 40"),
        ("secret", _LABEL, "lowercase letters, digits and '-', at most 63"),
    ):
        value = spec[key]
        if isinstance(value, str) and value and not pattern.fullmatch(value):
            ok = _bad(reader, (*at, key), f"{key}: {value!r} is not a Kubernetes name", hint)
    image = spec["image"]
    if isinstance(image, str) and image and not _image_ok(image):
        ok = _bad(
            reader,
            (*at, "image"),
            f"image: {image!r} is not an image reference",
            "like registry.example/classifier:{version} ({model} and {version} are filled in)",
        )
    url = spec["analysis_url"]
    if isinstance(url, str) and url and not url.startswith(("http://", "https://")):
        ok = _bad(reader, (*at, "analysis_url"), f"analysis_url: {url!r} is not an http(s) URL")
    if redact.url_has_password(url):
        ok = _bad(
            reader,
            (*at, "analysis_url"),
            "analysis_url: holds a password, written to the AnalysisTemplate in the clear",
            "give Argo's web provider its credentials another way (a header from a Secret)",
        )
    resources = _resources(reader, spec["resources"], (*at, "resources"))
    autoscale = _autoscale(reader, spec["autoscale"], (*at, "autoscale"), spec["replicas"])
    env = _env(reader, spec["env"], (*at, "env"))
    secret_env = _names(reader, spec["secret_env"], (*at, "secret_env"))
    if not ok or None in (resources, autoscale, env, secret_env):
        return None
    return Kubernetes(
        namespace=spec["namespace"], name=spec["name"], image=image, replicas=spec["replicas"],
        resources=resources or Resources(),
        autoscale=autoscale if isinstance(autoscale, Autoscale) else None,
        service_monitor=spec["service_monitor"], read_only_root=spec["read_only_root"],
        argo=spec["argo"], env=env or (), secret=spec["secret"], secret_env=secret_env or (),
        analysis_url=url,
    )  # fmt: skip


def _bad(reader: Reader, at: Where, message: str, hint: str | None = None) -> bool:
    reader.error(at, message, hint)
    return False


def _image_ok(image: str) -> bool:
    if any(c.isspace() for c in image) or image.startswith(("-", ":", "@", "/")):
        return False
    braces = re.findall(r"\{[^}]*\}", image)
    return all(b in PLACEHOLDERS for b in braces) and image.count("{") == len(braces)


def _resources(reader: Reader, item: Any, at: Where) -> Resources | None:
    spec = reader.shape("resources", item, at, "resources")
    if spec is None:
        return None
    ok = reader.clean
    out: dict[str, str] = {}
    for key, example in (("cpu", "500m or 2"), ("memory", "512Mi or 2Gi")):
        value = spec[key]
        text = value if isinstance(value, str) else _number(value)
        if text is None or not _QUANTITY.fullmatch(text):
            ok = _bad(reader, (*at, key), f"{key}: {value!r} is not a quantity", f"like {example}")
        else:
            out[key] = text
    return Resources(**out) if ok else None


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(value)


def _autoscale(
    reader: Reader, item: Any, at: Where, replicas: Any
) -> Autoscale | Literal[False] | None:
    """The autoscaler's bounds; False for ``autoscale: false`` (no autoscaler); None for a
    mistake."""
    if item is False:
        return False
    if item is True:
        item = {}
    fallback = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 2
    if isinstance(item, dict) and "min" not in item:
        item = {**item, "min": fallback}
    spec = reader.shape("autoscale", item, at, "autoscale")
    if spec is None or not reader.clean:
        return None
    if spec["min"] > spec["max"]:
        reader.error(
            at,
            f"autoscale: min {spec['min']} is more than max {spec['max']}",
            "min: the fewest replicas; max: the most",
        )
        return None
    return Autoscale(spec["min"], spec["max"], spec["cpu_percent"])


def _env(reader: Reader, item: Any, at: Where) -> tuple[tuple[str, str], ...] | None:
    if item is None:
        return ()
    if not isinstance(item, dict):
        reader.error(at, "env: a mapping of variable names to values, like {LOG_LEVEL: info}")
        return None
    out: list[tuple[str, str]] = []
    ok = True
    for name, value in item.items():
        key = str(name)
        if not _ENV_VAR.fullmatch(key):
            ok = _bad(reader, (*at, key), f"env: {key!r} is not an environment variable's name")
        elif _SECRETISH.search(key):
            ok = _bad(
                reader,
                (*at, key),
                f"env: {key} looks like a secret, and env: is written to a ConfigMap in the clear",
                f"list it under secret_env: [{key}] and keep its value in the Secret",
            )
        elif redact.url_has_password(value):
            ok = _bad(
                reader,
                (*at, key),
                f"env: {key} holds a password, and env: is written to a ConfigMap in the clear",
                f"list it under secret_env: [{key}] and keep its value in the Secret",
            )
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            out.append((key, str(value)))
        else:
            ok = _bad(reader, (*at, key), f"env: {key}: a text or a number, not {value!r}")
    return tuple(out) if ok else None


def _names(reader: Reader, item: Any, at: Where) -> tuple[str, ...] | None:
    if item is None:
        return ()
    if isinstance(item, str):
        item = [item]
    if not isinstance(item, list) or not all(isinstance(n, str) for n in item):
        reader.error(at, "secret_env: a list of variable names, like [CONVEYOR_DB]")
        return None
    bad = [n for n in item if not _ENV_VAR.fullmatch(n)]
    if bad:
        reader.error(
            at,
            f"secret_env: {bad[0]!r} is not an environment variable's name",
            "name the variables (like CONVEYOR_DB), never their values",
        )
        return None
    return tuple(dict.fromkeys(item))

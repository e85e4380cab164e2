"""Shared helpers for the chart tests: the pinned tools from ci/tools.sh, and helm renders.

Every test here uses the real helm binary (v3.19.0 from ci/tools.sh) and real validators; nothing
is mocked. The tools must be installed first: `ci/tools.sh` (see docs/helm.md).
"""
import functools
import os
import subprocess

import pytest
import yaml

from localapp import ROOT, SERVICES

CHART = ROOT / "charts" / "dockercoins"
TOOLS = ROOT / ".tools" / "bin"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
# The Kubernetes minor versions the chart must validate against (strictly).
K8S_VERSIONS = ["1.29", "1.30", "1.31", "1.32", "1.33", "1.34"]
RELEASE = "dockercoins"
NAMESPACE = "dockercoins"
APP_COMPONENTS = SERVICES   # the chart's own four, besides redis
# Kinds from CRDs (prometheus-operator, KEDA, Gateway API), with their API versions: no built-in
# schema to validate them against (tests/cluster validates them against the real CRDs).
CRD_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1", "PodMonitor": "monitoring.coreos.com/v1",
             "ScaledObject": "keda.sh/v1alpha1", "HTTPRoute": "gateway.networking.k8s.io/v1"}
EXPECTED_SCENARIOS = ["default", "ingress", "minimal", "persistence", "rng-daemonset", "rng-hpa"]


def tool(name):
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run ci/tools.sh first (it installs the pinned tools)")
    return str(path)


@functools.cache
def helm_env():
    """helm's config, cache and data in a private folder: no user repos or registry logins leak
    in, and nothing is written to the user's home."""
    base = ROOT / ".tools" / "helm-home"
    env = dict(os.environ)
    for var, sub in (("HELM_CONFIG_HOME", "config"), ("HELM_CACHE_HOME", "cache"),
                     ("HELM_DATA_HOME", "data")):
        (base / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / sub)
    env.pop("HELM_PLUGINS", None)  # .tools/bin/helm points it at .tools/helm-plugins
    env["PATH"] = f"{TOOLS}{os.pathsep}{env.get('PATH', '')}"
    return env


def helm(*args, check=True, timeout=120):
    result = subprocess.run([tool("helm"), *map(str, args)], capture_output=True, text=True,
                            env=helm_env(), timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(map(str, args))} failed ({result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    return result


def scenario_file(name):
    return CHART / "ci" / f"{name}-values.yaml"


def template_args(scenario=None, sets=(), api_versions=(), namespace=NAMESPACE):
    args = ["template", RELEASE, CHART, "--namespace", namespace]
    if scenario:
        args += ["-f", scenario_file(scenario)]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


@functools.cache
def _render_text(scenario, sets, api_versions, namespace):
    return helm(*template_args(scenario, sets, api_versions, namespace)).stdout


def render_text(scenario=None, sets=(), api_versions=(), namespace=NAMESPACE):
    return _render_text(scenario, tuple(sets), tuple(api_versions), namespace)


def render(scenario=None, sets=(), api_versions=(), namespace=NAMESPACE):
    """The objects `helm template` renders (helm test pods included), as dicts."""
    text = render_text(scenario, sets, api_versions, namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_specs(docs):
    """(object, pod spec) for every workload and bare pod."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc, doc["spec"]


def component(doc):
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def find(docs, kind, name):
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}

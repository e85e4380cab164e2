"""chart-testing (ct, built by ci/cluster.sh) on the chart: `ct lint` (helm lint, yamllint and
Chart.yaml's schema for every ci/*-values.yaml) and `ct install` against the real control plane
(install --wait, helm test and uninstall, once per ci/*-values.yaml)."""
import yaml

from helpers.kube import CHART, make_volume

CT_CHART = "charts/dockercoins"


def test_ct_lint(cluster):
    # No version-bump check against a git remote (CI clones have none) and no GitHub lookup of
    # maintainers (no network).
    out = cluster.run(["ct", "lint", "--charts", CT_CHART, "--validate-maintainers=false",
                       "--check-version-increment=false"], timeout=600)
    assert "All charts linted successfully" in out.stdout + out.stderr


def test_ct_install_every_ci_scenario(cluster, namespace):
    # What the scenarios expect to exist already: persistence-values.yaml's Secret and a volume.
    for scenario in (CHART / "ci").glob("*-values.yaml"):
        redis = (yaml.safe_load(scenario.read_text()) or {}).get("redis", {})
        secret = redis.get("auth", {}).get("existingSecret")
        if secret:
            cluster.kubectl("create", "secret", "generic", secret, "-n", namespace,
                            "--from-literal=redis-password=not-a-real-password", check=False)
        if redis.get("persistence", {}).get("enabled"):
            make_volume(cluster, redis["persistence"].get("size", "10Gi"))
    out = cluster.run(["ct", "install", "--charts", CT_CHART, "--namespace", namespace,
                       "--helm-extra-args", "--timeout 180s"], timeout=1200)
    text = out.stdout + out.stderr
    assert "All charts installed successfully" in text, text

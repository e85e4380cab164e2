"""The reports the pipeline leaves for the merge request, made for real where they can be offline:
the SBOM of each image (ci/sbom.sh, the sbom job), validated against the CycloneDX JSON schema
that cyclonedx-python-lib ships; and the physics gate's verdict and JUnit report
(dockercoins-lab gate), from measured rows. The gate's measurements themselves run on the real node
(tests/node/test_pipeline_on_node.py)."""
import json
import os
import subprocess
from xml.etree import ElementTree

import pytest
from dockercoins_lab import cli as lab, scaling

from helpers.pins import pins
from localapp import ROOT

SBOM_PYTHON = ROOT / ".tools" / "sbom-venv" / "bin" / "python"
VALIDATE = """
import sys
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation import make_schemabased_validator
validator = make_schemabased_validator(OutputFormat.JSON, SchemaVersion.V1_6)
for path in sys.argv[1:]:
    error = validator.validate_str(open(path).read())
    print(repr(str(error)) if error else "valid")
"""


def validate(*paths):
    """{path: "valid" or the validator's error} by the CycloneDX 1.6 JSON schema, in one process
    (loading the schemas takes most of the time)."""
    result = subprocess.run([str(SBOM_PYTHON), "-c", VALIDATE, *map(str, paths)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return dict(zip(paths, result.stdout.splitlines()))


@pytest.fixture(scope="module")
def sboms(tmp_path_factory):
    """ci/sbom.sh's SBOMs, made with no network at all (`unshare -rn`: a network namespace with
    only loopback, down) once the tool is installed. Where no namespace can be made (a CI
    container without user namespaces), with the network there but unused."""
    sbom = str(ROOT / "ci" / "sbom.sh")
    installed = subprocess.run([sbom, "--install"], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    out = tmp_path_factory.mktemp("sbom")
    offline = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    result = subprocess.run(["unshare", "-rn", sbom, str(out)] if offline else [sbom, str(out)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "REGISTRY": "registry.example/dc", "TAG": "1a2b3c4d"})
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_each_image_gets_a_valid_cyclonedx_sbom_of_its_python_packages(sboms):
    images = sorted(p.parent.name for p in (ROOT / "images").glob("*/requirements.txt"))
    assert sorted(p.name for p in sboms.iterdir()) == [f"{i}.cdx.json" for i in images]
    paths = [sboms / f"{image}.cdx.json" for image in images]
    assert validate(*paths) == {path: "valid" for path in paths}
    for image, path in zip(images, paths):
        bom = json.loads(path.read_text())
        assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
        name = f"registry.example/dc/{image}"
        assert bom["metadata"]["component"] == {"type": "container", "name": name,
                                                "bom-ref": name, "version": "1a2b3c4d"}
        components = {c["name"].lower().replace("_", "-"): c["version"] for c in bom["components"]}
        assert components == pins(ROOT / "images" / image / "requirements.txt"), image
        for component in bom["components"]:
            assert component["purl"].startswith(f"pkg:pypi/{component['name'].lower()}@"), component


def test_the_schema_check_refuses_a_broken_sbom(sboms, tmp_path):
    """The check above can fail: the same validator on an SBOM with a component's type wrong."""
    bom = json.loads((sboms / "rng.cdx.json").read_text())
    bom["components"][0]["type"] = "not-a-type"
    broken = tmp_path / "broken.cdx.json"
    broken.write_text(json.dumps(bom))
    verdict = validate(broken)[broken]
    assert verdict != "valid" and "not-a-type" in verdict


def rows(one, ten):
    return [scaling.row(1, 1, one), scaling.row(10, 1, ten)]


@pytest.mark.parametrize("one, ten", [(3.33, 10.0), (2.9, 8.6), (3.8, 11.4)])
def test_the_gate_passes_within_15_percent(one, ten):
    assert [why for _, why in lab.gate_checks(rows(one, ten))] == [None, None]


def test_the_gate_says_rng_lost_its_cap():
    # A concurrent rng: 10 workers run at their own 33/s.
    [(_, one), (_, ten)] = lab.gate_checks(rows(3.3, 32.8))
    assert one is None
    assert ten.startswith("10 workers on 1 rng mined 32.80 hashes/s, not a plateau near 10 "
                          "(228% over): rng has lost its cap of one request at a time")


def test_the_gate_says_one_worker_is_off():
    [(_, one), (_, ten)] = lab.gate_checks(rows(2.5, 10.1))
    assert one.startswith("1 worker on 1 rng mined 2.50 hashes/s, 25% off the model's 3.33")
    assert ten is None


def test_the_gate_report_is_junit_with_the_table():
    checks = lab.gate_checks(rows(3.3, 30.0))
    suite = ElementTree.fromstring(lab.junit(checks, rows(3.3, 30.0), 95.0))
    assert suite.tag == "testsuite" and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.find("failure") is None for c in cases] == [True, False]
    assert "rng has lost its cap" in cases[1].find("failure").get("message")
    assert "| 10 | 1 | 30.00 | 10.00 |" in suite.find("system-out").text

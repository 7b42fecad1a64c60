"""The Kubernetes manifests parse, and their names, labels, ports and counts agree with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from loadgen.options import add_arguments

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
WORKER_LOOP = DEPLOY.parents[1] / "scripts" / "locust_worker_loop.sh"


def _docs() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def _flag(command: list[str], name: str) -> str:
    for i, arg in enumerate(command):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} not in {command}")


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict[str, Any]]:
    return _docs()


def test_every_manifest_kind_is_present(docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(docs) == {
        ("Secret", "loadgen-api-key"),
        ("Service", "loadgen-master"),
        ("PersistentVolumeClaim", "loadgen-results"),
        ("Job", "loadgen-master"),
        ("Deployment", "loadgen-worker"),
    }


def test_workers_reach_the_master_and_the_master_waits_for_all_of_them(docs: dict[tuple[str, str], Any]) -> None:
    service = docs[("Service", "loadgen-master")]
    job = docs[("Job", "loadgen-master")]["spec"]["template"]
    worker = docs[("Deployment", "loadgen-worker")]
    master_cmd = job["spec"]["containers"][0]["command"]
    worker_cmd = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert service["spec"]["selector"].items() <= job["metadata"]["labels"].items()
    assert not service["spec"]["selector"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    assert worker["spec"]["selector"]["matchLabels"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    port = service["spec"]["ports"][0]["port"]
    assert int(_flag(master_cmd, "--master-bind-port")) == port == int(_flag(worker_cmd, "--master-port"))
    assert _flag(master_cmd, "--master-bind-host") == "0.0.0.0"  # our default is loopback
    assert _flag(worker_cmd, "--master-host") == service["metadata"]["name"]
    assert int(_flag(master_cmd, "--expect-workers")) == worker["spec"]["replicas"]
    assert _flag(master_cmd, "-f") == _flag(worker_cmd, "-f")
    assert job["spec"]["restartPolicy"] == "Never"  # one cell per Job; workers restart (Deployment) and rejoin


def test_volumes_secrets_and_resources_are_consistent(docs: dict[tuple[str, str], Any]) -> None:
    secret = docs[("Secret", "loadgen-api-key")]
    for kind, name in (("Job", "loadgen-master"), ("Deployment", "loadgen-worker")):
        pod = docs[(kind, name)]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert container["image"] == "loadgen:latest"
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes
        assert volumes["locustfiles"]["configMap"]["name"] == "loadgen-locustfiles"
        assert _flag(container["command"], "-f").startswith("/locustfiles/")
        for source in (v.get("persistentVolumeClaim") for v in volumes.values()):
            if source:
                assert ("PersistentVolumeClaim", source["claimName"]) in docs
        for env in container.get("env", []):
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        # one Locust process is one core: a larger request would be wasted
        assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "1"
    master = docs[("Job", "loadgen-master")]["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in master  # the master never sends requests: the key stays with the workers


def test_commands_use_only_options_locust_and_we_know() -> None:
    import locust.argument_parser as ap

    parser = ap.get_parser()
    add_arguments(parser)
    known = {s for action in parser._actions for s in action.option_strings}
    for (kind, _), doc in _docs().items():
        if kind not in ("Job", "Deployment"):
            continue
        command = doc["spec"]["template"]["spec"]["containers"][0]["command"]
        if kind == "Deployment":  # the worker restart loop, run from the image (the Dockerfile copies the tree)
            assert command[:2] == ["sh", "/app/scripts/locust_worker_loop.sh"] and WORKER_LOOP.is_file()
            assert "COPY . ." in (DEPLOY / "Dockerfile").read_text()
            command = ["locust", "--worker", *command[2:]]
        assert command[0] == "locust"
        flags = {a.split("=", 1)[0] for a in command[1:] if a.startswith("-") and not a.lstrip("-").isdigit()}
        assert flags <= known, flags - known

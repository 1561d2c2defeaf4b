"""The deployment files, checked without Docker or Kubernetes (neither can run here): the Dockerfile,
docker-compose.yaml with .env.example, and the Helm values for the official Airflow chart.

The Helm values are validated against the chart's ``values.schema.json`` when one is given
(``KUBECOST_ETL_HELM_SCHEMA=/path/to/values.schema.json`` of chart ``CHART_VERSION``: no package
registry this project can reach carries it, and nothing fetched from public repositories is
committed). Without it, the keys these values rely on are checked for shape and meaning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_VERSION = "1.22.0"
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]
LONG_RUNNING = ["postgres", "redis", *AIRFLOW_SERVICES[1:]]
SHARED_SECRETS = ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"]
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|AUTH$", re.I)


def locked_airflow_version() -> str:
    return re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


# ------------------------------------------------------------------------------ Dockerfile


def test_the_dockerfile_builds_on_the_locked_airflow_and_ships_no_simulator():
    text = (REPO / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["AIRFLOW_VERSION"] == locked_airflow_version()
    assert args["PYTHON_VERSION"] == "3.11"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert all(s.startswith("apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}") for s in stages[:2])
    image = next(s for s in stages if " AS image" in s.splitlines()[0])
    image = "\n".join(line for line in image.splitlines() if not line.startswith("#"))
    assert stages[-1].strip() == "image"  # a plain `docker build` gives the product image
    assert "simulator" not in image.replace("kubecost_sim must not be in the image", "")
    assert "kubecost_sim" in image  # ... and the build fails if the simulator got in anyway
    assert re.findall(r"^USER (\S+)", image, re.M)[-1] == "airflow"
    for command in re.findall(r"pip install[^\n]*", text):
        assert "--no-cache-dir" in command, command
    assert "-c /tmp/requirements/requirements.txt" in image  # every version from the lock
    runtime = (REPO / "requirements.in").read_text().split("# test tools")[0]
    assert not {"pytest", "moto[server]", "ruff"} & {
        line.split("#")[0].strip() for line in runtime.splitlines()
    }


# ------------------------------------------------------------------------------ compose


def test_compose_has_the_official_celery_layout_from_one_image(compose):
    services = compose["services"]
    assert set(LONG_RUNNING) | {"airflow-init"} <= set(services)
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert images == {"${AIRFLOW_IMAGE_NAME:-kubecost-etl-airflow:latest}"}
    assert {services[name]["build"]["target"] for name in AIRFLOW_SERVICES} == {"image"}
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES[1:]}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert "./config:/opt/airflow/config:ro" in services[name]["volumes"], name
        assert env["KUBECOST_ETL_CONFIG"].startswith("/opt/airflow/config/"), name
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_every_airflow_service_shares_one_jwt_secret_and_fernet_key_from_env(compose, env_example):
    services = compose["services"]
    for variable in SHARED_SECRETS:
        values = {services[name]["environment"][variable] for name in AIRFLOW_SERVICES}
        assert len(values) == 1, (variable, values)
        (value,) = values
        match = _REFERENCE.fullmatch(value)
        assert match and match.group(1) == variable and match.group(2) == ":?", value  # required, from .env
        assert env_example[variable] == ""  # no shared default secret shipped


def test_every_long_running_service_has_a_health_check(compose):
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check["test"], name
    for name in ("kubecost-sim", "local-s3"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_no_secret_is_written_into_compose_and_env_example_names_every_variable(compose, env_example):
    text = (REPO / "docker-compose.yaml").read_text()
    referenced = {m.group(1) for m in _REFERENCE.finditer(text)}
    assert referenced <= set(env_example), sorted(referenced - set(env_example))
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            value = str(value)
            if _SECRET_NAME.search(key):
                assert _REFERENCE.fullmatch(value), f"{name}: {key} must come from .env, not {value!r}"
            for user_info in re.findall(r"://([^@/]*)@", value):
                assert user_info.replace(":", "") == "" or "${" in user_info, f"{name}: {key} has credentials"
    required = {m.group(1) for m in _REFERENCE.finditer(text) if m.group(2) == ":?"}
    assert required == {"POSTGRES_USER", "POSTGRES_PASSWORD", "REDIS_PASSWORD", *SHARED_SECRETS}
    for variable in required - {"POSTGRES_USER"}:
        assert env_example[variable] == "", f".env.example ships a value for {variable}"


def test_airflow_init_checks_the_env_and_the_config_before_migrating(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    checked = set(re.search(r"for name in ([A-Z0-9_ ]+); do", script).group(1).split())
    required = {
        m.group(1)
        for m in _REFERENCE.finditer((REPO / "docker-compose.yaml").read_text())
        if m.group(2) == ":?"
    }
    assert checked == required
    order = [
        script.index(part)
        for part in (
            "not set in .env",
            "is not mounted",
            "python -m kubecost_etl check-config",
            "airflow db migrate",
        )
    ]
    assert order == sorted(order)  # every check before the database is touched
    assert "healthcheck" not in init  # a one-shot job


def test_the_local_profile_adds_the_simulator_and_a_local_s3(compose):
    services = compose["services"]
    local = {name for name, service in services.items() if "local" in service.get("profiles", [])}
    assert local == {"kubecost-sim", "local-s3", "local-s3-bucket"}
    for name in AIRFLOW_SERVICES:
        assert not services[name].get("profiles"), name
    init_needs = services["airflow-init"]["depends_on"]
    assert all(init_needs[name]["required"] is False for name in ("kubecost-sim", "local-s3-bucket"))
    assert services["kubecost-sim"]["build"]["target"] == "dev-tools"
    local_config = yaml.safe_load((REPO / "config" / "kubecost-etl.local.yaml").read_text())
    assert local_config["clusters"][0]["kubeconfig"].startswith("/opt/airflow/kube-local/")
    store = local_config["defaults"]["backup"]["object_store"]["config_file"]
    assert (REPO / "config" / Path(store).name).exists() and store.startswith("/opt/airflow/config/")


# --------------------------------------------------------------------------------- Helm


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())


def test_helm_values_validate_against_the_charts_schema(helm_values):
    schema_path = os.environ.get("KUBECOST_ETL_HELM_SCHEMA")
    if not schema_path:
        pytest.skip(
            f"KUBECOST_ETL_HELM_SCHEMA not set: give it chart {CHART_VERSION}'s values.schema.json to "
            "validate against it (the structural checks below run regardless)"
        )
    import json

    import jsonschema

    schema = json.loads(Path(schema_path).read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(helm_values)


def test_helm_values_set_what_the_deployment_relies_on(helm_values):
    text = (REPO / "deploy" / "helm" / "values.yaml").read_text()
    assert f"--version {CHART_VERSION}" in text  # the chart version the values are written for
    assert helm_values["airflowVersion"] == locked_airflow_version()
    image = helm_values["images"]["airflow"]
    assert isinstance(image["repository"], str) and isinstance(image["tag"], str)
    assert helm_values["defaultAirflowRepository"] == image["repository"]
    assert helm_values["executor"] in ("CeleryExecutor", "KubernetesExecutor")
    assert helm_values["triggerer"]["enabled"] is True and helm_values["triggerer"]["replicas"] >= 1
    assert helm_values["dagProcessor"]["enabled"] is True
    assert isinstance(helm_values["workers"]["replicas"], int)
    # secrets only by reference: the chart's own literal keys stay unset
    for literal in ("fernetKey", "jwtSecret", "apiSecretKey", "webserverSecretKey"):
        assert helm_values.get(literal) is None, literal
    for reference in ("fernetKeySecretName", "jwtSecretName", "apiSecretKeySecretName"):
        assert isinstance(helm_values[reference], str) and helm_values[reference], reference
    assert helm_values["data"]["metadataSecretName"]
    # the config and store files come from Secrets, mounted read-only where KUBECOST_ETL_CONFIG points
    secret_volumes = {v["name"] for v in helm_values["volumes"] if v.get("secret", {}).get("secretName")}
    mounts = {m["mountPath"]: m for m in helm_values["volumeMounts"]}
    assert all(m["readOnly"] is True and m["name"] in secret_volumes for m in mounts.values())
    config = next(e["value"] for e in helm_values["env"] if e["name"] == "KUBECOST_ETL_CONFIG")
    assert str(Path(config).parent) in mounts
    git_sync = helm_values["dags"]["gitSync"]
    assert isinstance(git_sync["enabled"], bool) and git_sync["repo"] and git_sync["subPath"] == "dags"
    assert all(isinstance(v, (int, str)) for v in helm_values["config"]["core"].values())

"""compose.yaml, the production layout, read rather than run (no Docker engine here): it must match the code.

Services and their commands, the settings each engine process gets (every GRIDCASE_* variable a field of the
settings model, with a valid value), the Kafka broker's KRaft listeners and where the engine connects to them,
the database the engine uses and the one PostgreSQL creates, volumes, ports, health checks and start order.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from adapters.cli import app
from adapters.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENGINE = ["load-reference", "api", "relay", "projector-0", "projector-1"]
HEALTHY = {"postgres", "kafka", "api"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


#: ``${NAME:?message}``: compose takes the value from the operator's environment and refuses to start without it.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?(?P<message>[^}]+)\}$")
#: Values that must never be written into the file: every process gets the operator's.
SECRETS = {"GRIDCASE_MASTER_KEY", "GRIDCASE_CHECK_CODE_SECRET"}
#: What an operator would set, for reading the layout as the engine would.
OPERATOR = {"GRIDCASE_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(), "GRIDCASE_CHECK_CODE_SECRET": "ab" * 32}


def env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping, so keys can be checked"
    return environment


def interpolated(environment: dict[str, str]) -> dict[str, str]:
    """The environment as compose gives it, with the operator's values of the required variables."""
    out = {}
    for key, value in environment.items():
        required = REQUIRED.match(value) if isinstance(value, str) else None
        out[key] = OPERATOR[required.group("name")] if required else value
    return out


def kafka_listeners(kafka: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Listener name → ``host:port`` as bound and as advertised."""
    config = env(kafka)

    def parse(value: str) -> dict[str, str]:
        return dict(item.split("://", 1) for item in value.split(","))

    return parse(config["KAFKA_LISTENERS"]), parse(config["KAFKA_ADVERTISED_LISTENERS"])


def test_the_services_of_the_production_layout(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "kafka", *ENGINE}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("postgres", "kafka"):
        tag = services[name]["image"].partition(":")[2]
        assert tag and tag != "latest", f"{name}: pin the image's tag"
    for name in ENGINE:
        assert services[name]["build"] == "."
        assert services[name]["image"] == services["api"]["image"], "one image for every engine process"


@pytest.mark.parametrize("name", ENGINE)
def test_engine_commands_run_the_gridcase_cli(services: dict[str, dict[str, Any]], name: str) -> None:
    command = services[name]["command"]
    assert isinstance(command, list), "exec form: no shell between the container and the process"
    assert command[0] == "gridcase"
    runner = CliRunner()
    # --help is eager: it stops before running anything, after every option has been recognised.
    result = runner.invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_the_projectors_split_the_partitions_between_them(services: dict[str, dict[str, Any]]) -> None:
    members = []
    for name in ("projector-0", "projector-1"):
        command = services[name]["command"]
        assert command[1:5] == ["project", "--from", "kafka", "--follow"]
        members.append(command[command.index("--member") + 1])
    assert sorted(members) == ["0/2", "1/2"]


@pytest.mark.parametrize("name", ENGINE)
def test_engine_environment_is_the_settings_model(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = env(services[name])
    fields = {f"GRIDCASE_{field.upper()}" for field in Settings.model_fields}
    assert set(environment) - fields == set(), "variables the settings model does not read"
    assert all(isinstance(v, str) for v in environment.values()), "quote values: compose refuses YAML booleans"
    for key in [k for k in os.environ if k.startswith("GRIDCASE_")]:
        monkeypatch.delenv(key)
    for key, value in interpolated(environment).items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises on a value the model refuses
    assert settings.log_format == "json"
    assert settings.projections_source == "kafka"
    assert settings.database_url.startswith("postgresql://")


@pytest.mark.parametrize("name", ENGINE)
def test_secrets_come_from_the_operator_and_compose_refuses_to_start_without_them(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    environment = env(services[name])
    for key in SECRETS:
        required = REQUIRED.match(environment.get(key, ""))
        assert required is not None, f"{key} must be ${{{key}:?...}}, not a value in the file"
        assert required.group("name") == key and "set " + key in required.group("message")


def test_engine_processes_find_kafka_on_its_internal_listener(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    bound, advertised = kafka_listeners(kafka)
    internal = env(kafka)["KAFKA_INTER_BROKER_LISTENER_NAME"]
    host, _, port = advertised[internal].rpartition(":")
    assert host == "kafka", "advertised under the service name, which is the host name on the compose network"
    assert bound[internal].endswith(f":{port}")
    users = {name: env(s) for name, s in services.items() if "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS" in env(s)}
    assert set(users) == {"relay", "projector-0", "projector-1"}
    for name, environment in users.items():
        assert environment["GRIDCASE_KAFKA_BOOTSTRAP_SERVERS"] == f"kafka:{port}", name
        assert int(environment["GRIDCASE_KAFKA_PARTITIONS"]) >= 2, "two projectors need two partitions or more"
    client_ids = [e["GRIDCASE_KAFKA_CLIENT_ID"] for e in users.values()]
    assert len(set(client_ids)) == len(client_ids), "one client id per process, to tell them apart on the broker"


def test_kafka_runs_one_node_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    config = env(kafka)
    bound, advertised = kafka_listeners(kafka)
    assert set(config["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in config
    controller = config["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in bound
    assert controller not in advertised, "the controller listener is not for clients"
    controller_port = bound[controller].rpartition(":")[2]
    assert config["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{config['KAFKA_NODE_ID']}@kafka:{controller_port}"
    protocols = dict(item.split(":") for item in config["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) == set(protocols)
    assert set(advertised) <= set(bound)
    assert len(base64.urlsafe_b64decode(config["CLUSTER_ID"] + "==")) == 16, "a cluster id is a base64 UUID"
    # The relay creates the topics with their partitions and retention; the broker must not invent them.
    assert config["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert config["KAFKA_LOG_RETENTION_MS"] == "-1"
    assert all(config[k] == "1" for k in config if k.endswith("REPLICATION_FACTOR")), "one broker"
    mounts = {v.split(":")[1] for v in kafka["volumes"]}
    assert config["KAFKA_LOG_DIRS"] in mounts, "the log directory survives the container"
    # The port published to the host is the one advertised to clients on the host.
    external = {name: address for name, address in advertised.items() if address.startswith("localhost:")}
    assert [p.split(":")[0] for p in kafka["ports"]] == [a.rpartition(":")[2] for a in external.values()]


def created_databases(postgres: dict[str, Any]) -> dict[str, str]:
    """Database → owner, for the databases the image's init scripts create on a fresh volume."""
    created = {}
    for volume in postgres.get("volumes", []):
        source, target = volume.split(":")[:2]
        if target == "/docker-entrypoint-initdb.d":
            for script in sorted((ROOT / source).glob("*.sql")):
                text = script.read_text("utf-8")
                created |= dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+);", text))
    return created


def test_database_urls_point_at_the_postgres_service_and_its_databases(services: dict[str, dict[str, Any]]) -> None:
    postgres = env(services["postgres"])
    read_databases = created_databases(services["postgres"])
    assert read_databases == {"gridcase_read": postgres["POSTGRES_USER"]}
    for name in ENGINE:
        environment = env(services[name])
        for key in ("GRIDCASE_DATABASE_URL", "GRIDCASE_READ_DATABASE_URL"):
            url = urlsplit(environment[key])
            assert url.scheme == "postgresql", (name, key)
            assert url.hostname == "postgres", (name, key)
            assert (url.port or 5432) == 5432, (name, key)
            assert url.username == postgres["POSTGRES_USER"], (name, key)
            assert url.password == postgres["POSTGRES_PASSWORD"], (name, key)
        assert urlsplit(environment["GRIDCASE_DATABASE_URL"]).path == "/" + postgres["POSTGRES_DB"]
        # Kafka-fed read models in a database of their own (docs/kafka.md), one the server creates.
        assert urlsplit(environment["GRIDCASE_READ_DATABASE_URL"]).path.lstrip("/") in read_databases


def test_named_volumes_are_declared_and_used(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"bind mount of a path not in the repository: {source}"
            else:
                assert not source.startswith(("/", "~")), "nothing from outside the repository"
                used.add(source)
    assert used == set(compose.get("volumes", {})), "each named volume declared once, and none left over"
    assert {"pgdata", "kafkadata"} <= used


def test_published_ports_are_unique_strings(services: dict[str, dict[str, Any]]) -> None:
    published = []
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert isinstance(mapping, str), f"{name}: quote ports (YAML reads 22:22 as a number)"
            assert re.fullmatch(r"\d+:\d+", mapping), mapping
            published.append(mapping.split(":")[0])
    assert len(published) == len(set(published))
    assert sorted(published) == ["5432", "8000", "9094"]


def test_health_checks_and_start_order(services: dict[str, dict[str, Any]]) -> None:
    for name in HEALTHY:
        check = services[name].get("healthcheck")
        assert check, f"{name} has a health check"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
    api = services["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert api["ports"] == [f"{port}:{port}"]
    assert port in " ".join(api["healthcheck"]["test"]), "the health check asks the port the API listens on"
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            if target in HEALTHY:
                expected = "service_healthy"
            elif target == "load-reference":
                expected = "service_completed_successfully"
            else:
                expected = "service_started"
            assert condition == {"condition": expected}, (name, target)
        environment = env(service)
        needs = set()
        if any(v.startswith("postgresql://") for v in environment.values()):
            needs.add("postgres")
        if "GRIDCASE_KAFKA_BOOTSTRAP_SERVERS" in environment:
            needs.add("kafka")
        assert needs <= set(service.get("depends_on", {})), f"{name} starts before what it connects to"
    assert services["load-reference"]["restart"] == "no", "a one-off is not restarted when it is done"
    assert "load-reference" in api["depends_on"], "the API serves once the reference district is there"


def test_the_image_holds_every_package_and_the_data_read_beside_the_source() -> None:
    import tomllib  # noqa: PLC0415 - only this test reads pyproject.toml

    copied = set(re.findall(r"^COPY (\S+) \./\1$", (ROOT / "Dockerfile").read_text("utf-8"), flags=re.MULTILINE))
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["packages"]["find"]
    wanted = {name.rstrip("*") for name in packages["include"]} | {"schemas", "rules"}
    assert wanted - copied == set(), "the image would miss them: gridcase would not start or not find its data"
    assert "pip install --no-cache-dir -e ." in (ROOT / "Dockerfile").read_text("utf-8")

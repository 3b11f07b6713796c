"""docker/: what can be checked without a Docker engine (there is none on our machines).

Checked here: the compose file parses with the expected services, volumes, health checks
and published ports, and holds no password; Synapse's config passes Synapse's own config
loader with the confidentiality settings in force; the proxy refuses the admin API on
every site; Element points at this homeserver; the Dockerfile is multi-stage, non-root,
with a /data volume and a Python health check on the port the bot's config uses; the
commands it runs are the ones README.md documents; the image's entry point works as a
plain process with exactly the files the image copies; init-secrets.sh makes its files
with the right modes and never overwrites them. Not checked: building the image, pulling
the others, and the stack running (see README.md, "What was and was not exercised").
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SERVICES = {"postgres", "synapse", "element", "bot", "proxy"}
SECRET_WORDS = re.compile(r"password|secret|token|key", re.I)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def exec_form(args: str) -> list[str]:
    return list(json.loads(args))


# --------------------------------------------------------------------------------------
# compose


def test_compose_has_the_services_volumes_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert {"pgdata", "synapse-data", "bot-data"} <= set(compose["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "synapse-data:/data" in services["synapse"]["volumes"]
    assert "bot-data:/data" in services["bot"]["volumes"]
    for name in ("postgres", "synapse"):
        assert services[name]["healthcheck"]["test"], name
    assert "healthcheck" not in services["bot"]  # the image's own HEALTHCHECK applies
    assert instruction("HEALTHCHECK")
    assert services["bot"]["depends_on"]["synapse"]["condition"] == "service_healthy"
    assert services["synapse"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["bot"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_only_the_proxy_is_published(compose: dict[str, Any]) -> None:
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"proxy"}
    # Synapse (and with it /_synapse/admin) only inside the compose network
    assert compose["services"]["synapse"]["expose"] == ["8008"]


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _strings(v, f"{path}[{i}]")]
    return [(path, str(node))]


def test_compose_holds_no_password(compose: dict[str, Any]) -> None:
    for path, value in _strings(compose):
        key = path.rsplit(".", 1)[-1]
        if path.endswith("]") or path.startswith(".secrets"):
            continue  # list items (e.g. the names of secrets) and the secrets' files
        if SECRET_WORDS.search(key):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{path} = {value!r}"
    for name, secret in compose["secrets"].items():
        assert secret == {"file": f"./secrets/{name}"}
    for service in compose["services"].values():
        for value in (service.get("environment") or {}).values():
            assert "${" in value or not SECRET_WORDS.search(value)


def test_secrets_and_env_are_never_committed() -> None:
    for path in ("docker/.env", "docker/secrets/bot_password", "docker/secrets/store_key"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert result.returncode == 0, f"{path} is not ignored by git"
    example = (DOCKER / ".env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.M)


# --------------------------------------------------------------------------------------
# Synapse, the proxy, Element


def test_synapse_config_passes_synapse_and_keeps_confidentiality(tmp_path: Path) -> None:
    text = (DOCKER / "synapse" / "homeserver.yaml").read_text()
    raw = yaml.safe_load(text)
    for inline in ("registration_shared_secret", "macaroon_secret_key", "form_secret"):
        assert inline not in raw
    assert "password" not in raw["database"]["args"]
    # Synapse's own loader (in a child: importing Synapse here would bring Twisted into
    # the unit tests' process), with the container paths moved into a temp dir
    local = text.replace("/data/", f"{tmp_path}/").replace("/config/", f"{tmp_path}/")
    (tmp_path / "homeserver.yaml").write_text(local)
    shutil.copy(DOCKER / "synapse" / "log.config", tmp_path / "log.config")
    result = subprocess.run(
        [sys.executable, "-c", SYNAPSE_CHECK, str(tmp_path / "homeserver.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    day = 24 * 3600 * 1000
    assert got["retention"]
    assert got["purge_jobs"] >= 1
    assert 0 < got["redaction_retention_period"] <= day
    assert 0 < got["forgotten_room_retention_period"] <= day
    assert got["registration"] is False
    assert got["database"] == "psycopg2"


SYNAPSE_CHECK = """
import json, sys
from synapse.config.homeserver import HomeServerConfig
args = ["-c", sys.argv[1]]
HomeServerConfig.load_or_generate_config("check", [*args, "--generate-missing-configs"])
c = HomeServerConfig.load_config("check", args)
print(json.dumps({
    "retention": c.retention.retention_enabled,
    "purge_jobs": len(c.retention.retention_purge_jobs),
    "redaction_retention_period": c.server.redaction_retention_period,
    "forgotten_room_retention_period": c.server.forgotten_room_retention_period,
    "registration": c.registration.enable_registration,
    "database": c.database.databases[0].config["name"],
}))
"""


def test_the_proxy_refuses_the_admin_api_on_every_site() -> None:
    caddy = (DOCKER / "Caddyfile").read_text()
    assert "@admin path /_synapse/admin /_synapse/admin/*" in caddy
    sites = re.findall(r"^(\{\$[A-Z_]+\}[^{]*)\{(.*?)^\}", caddy, re.M | re.S)
    assert len(sites) == 3
    for head, body in sites:
        assert "import no_admin_api" in body, head


def test_the_web_chat_page_goes_through_the_proxy(compose: dict[str, Any]) -> None:
    """The proxy's web chat site reaches the bot's web chat listener (exposed on the
    private network, never published), and the bot believes the proxy's X-Forwarded-For."""
    config = yaml.safe_load((DOCKER / "config.yaml").read_text())
    webchat = config["webchat"]
    assert webchat["enabled"] is True
    port = webchat["listen"].rsplit(":", 1)[1]
    caddy = (DOCKER / "Caddyfile").read_text()
    site = re.search(r"^\{\$WEBCHAT_DOMAIN\} \{(.*?)^\}", caddy, re.M | re.S)
    assert site is not None
    assert f"reverse_proxy bot:{port}" in site[1]
    bot = compose["services"]["bot"]
    assert port in [str(p) for p in bot["expose"]]
    assert "ports" not in bot
    assert "WEBCHAT_DOMAIN" in compose["services"]["proxy"]["environment"]
    assert webchat["trusted_proxies"]
    assert webchat["public_url"] == "https://${HELPLINE_WEBCHAT_DOMAIN}"
    assert "WEBCHAT_DOMAIN=" in (DOCKER / ".env.example").read_text()


def test_element_points_at_this_homeserver() -> None:
    element = json.loads((DOCKER / "element" / "config.json").read_text())
    synapse = yaml.safe_load((DOCKER / "synapse" / "homeserver.yaml").read_text())
    server = element["default_server_config"]["m.homeserver"]
    assert server["base_url"] == synapse["public_baseurl"].rstrip("/")
    assert server["server_name"] == synapse["server_name"]
    assert element["disable_custom_urls"] is True


# --------------------------------------------------------------------------------------
# the image


def test_dockerfile_is_multi_stage_non_root_with_data_volume_and_healthcheck() -> None:
    stages = instruction("FROM")
    assert len(stages) >= 2
    assert all(" AS " in s.upper() for s in stages)
    users = instruction("USER")
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any("/data" in v for v in instruction("VOLUME"))
    (check,) = instruction("HEALTHCHECK")
    assert "curl" not in check
    assert 'CMD ["python"' in check
    port = yaml.safe_load((DOCKER / "config.yaml").read_text())["http"]["port"]
    assert f"http://127.0.0.1:{port}/healthz" in check
    for args in instruction("COPY"):
        if "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_dockerfile_commands_are_the_ones_the_readme_documents() -> None:
    readme = (ROOT / "README.md").read_text()
    command = exec_form(instruction("ENTRYPOINT")[0]) + exec_form(instruction("CMD")[0])
    assert shlex.join(command) in readme
    build = re.search(r"^#\s+(docker build .*)$", (DOCKER / "Dockerfile").read_text(), re.M)
    assert build
    assert build[1] in readme
    installs = [a for a in instruction("RUN") if "pip install ." in a]
    assert installs
    assert "pip install ." in readme
    for args in instruction("COPY"):
        if "--from" not in args:
            *sources, _ = args.split()
            ignore = (ROOT / ".dockerignore").read_text()
            for source in sources:
                assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n"), source


def image_files(tmp_path: Path) -> Path:
    """What the image's build stage copies, and nothing else."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "bot", src / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def run_entry(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    command = exec_form(instruction("ENTRYPOINT")[0])
    assert command[:2] == ["python", "-m"]
    workdir = tmp_path / "data"  # WORKDIR /data: not the source tree
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, *command[1:], *args],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(image_files(tmp_path)), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_entry_point_runs_as_a_plain_process(tmp_path: Path) -> None:
    result = run_entry(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "check-config", "demo", "report", "identities", "reset-identity"):
        assert command in result.stdout


def test_the_docker_config_passes_check_config(tmp_path: Path) -> None:
    shutil.copy(DOCKER / "config.yaml", tmp_path / "config.yaml")
    result = run_entry(
        tmp_path,
        "check-config",
        str(tmp_path / "config.yaml"),
        "--no-secret-files",
        env={
            "HELPLINE_SERVER_NAME": "helpline.test",
            "HELPLINE_WEBCHAT_DOMAIN": "chat.helpline.test",
            "HELPLINE_MATRIX_DOMAIN": "matrix.helpline.test",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


# --------------------------------------------------------------------------------------
# init-secrets.sh


def test_init_secrets_makes_private_files_and_never_overwrites(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    for name in ("init-secrets.sh", ".env.example"):
        shutil.copy(DOCKER / name, docker / name)
    run = [str(docker / "init-secrets.sh")]
    subprocess.run(run, check=True, capture_output=True)
    secrets = docker / "secrets"
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    assert oct((docker / ".env").stat().st_mode & 0o777) == "0o600"
    env = (docker / ".env").read_text()
    password = re.search(r"^POSTGRES_PASSWORD=(\S+)$", env, re.M)
    assert password
    assert len(password[1]) >= 32
    first = {p.name: p.read_text() for p in secrets.iterdir()}
    assert set(first) == {"bot_password", "store_key", "synapse_admin_token"}
    assert len(first["bot_password"]) >= 32
    assert first["bot_password"] != first["store_key"]
    subprocess.run(run, check=True, capture_output=True)
    assert {p.name: p.read_text() for p in secrets.iterdir()} == first
    assert (docker / ".env").read_text() == env

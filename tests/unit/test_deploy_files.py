"""The deployment files say what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> set[str]:
    """Commands the README's Deploy section lists as `- name: `command``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme[readme.index("## Deploy") :]
    return set(re.findall(r"^- [A-Za-z]+: `([^`]+)`$", deploy, flags=re.MULTILINE))


def test_compose_runs_the_commands_the_readme_documents() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"api", "worker", "postgres", "redis"}
    commands = {" ".join(services[name]["command"]) for name in ("api", "worker")}
    assert commands == _readme_commands()
    assert "--workers 2" in " ".join(services["api"]["command"])
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert environment["TOURLINE_ENV"] == "production"
        assert environment["DATABASE_URL"].startswith("postgresql://")
        assert environment["REDIS_URL"].startswith("redis://redis:")
        # No working secret is written down: compose refuses to start without one.
        assert ":?" in environment["TOURLINE_SECRET_KEY"]


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^USER 10001$", dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert 'CMD ["tourline", "serve"' in dockerfile

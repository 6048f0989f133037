"""`asya operator` settings: environment, flags, and clear failures before touching a cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from asya.errors import ConfigError
from asya.k8s.settings import OperatorSettings
from tests.helpers import asya_command, child_env


def test_settings_default_to_every_namespace_and_declaring_queues() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.namespaces == ()
    assert settings.declare_queues is True
    assert settings.sidecar_image == "asya:latest"


def test_settings_are_read_from_the_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "ASYA_OPERATOR_NAMESPACES": "team-a, team-b,",
            "ASYA_SIDECAR_IMAGE": "registry/asya:2",
            "ASYA_OPERATOR_DECLARE_QUEUES": "no",
            "ASYA_OPERATOR_LIVENESS": "",
        }
    )
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.sidecar_image == "registry/asya:2"
    assert settings.declare_queues is False
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_a_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ASYA_OPERATOR_DECLARE_QUEUES"):
        OperatorSettings.from_env({"ASYA_OPERATOR_DECLARE_QUEUES": "maybe"})


def run_operator(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = child_env({"KUBECONFIG": str(tmp_path / "missing-kubeconfig"), **env})
    environment.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        asya_command("operator"),
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


def test_operator_without_a_cluster_exits_2_naming_kubeconfig(tmp_path: Path) -> None:
    result = run_operator(tmp_path)
    assert result.returncode == 2
    assert "KUBECONFIG" in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_with_a_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_operator(tmp_path, ASYA_OPERATOR_DECLARE_QUEUES="maybe")
    assert result.returncode == 2
    assert "ASYA_OPERATOR_DECLARE_QUEUES" in result.stderr

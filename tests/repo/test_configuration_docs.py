"""docs/configuration.md is the complete list: every variable a settings class reads has a row there."""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

from agentmesh.llm import registry

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SETTINGS_MODULES = ("gateway.settings", "orchestrator_svc.settings", "worker_svc.settings", "synthesizer_svc.settings")
OUR_PACKAGES = {"agentmesh", "gateway", "orchestrator_svc", "worker_svc", "synthesizer_svc"}


def _settings_classes() -> set[type[BaseSettings]]:
    for module in (*SETTINGS_MODULES, *(entry.module for entry in registry.PROVIDERS.values())):
        importlib.import_module(module)
    found: set[type[BaseSettings]] = set()
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] in OUR_PACKAGES:
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_settings_variable_has_a_row_in_the_configuration_reference() -> None:
    documented = {
        name.strip().strip("`")
        for line in CONFIGURATION_DOC.read_text().splitlines()
        if line.startswith("| `")
        for name in line.split("|")[1].split(",")
    }
    classes = _settings_classes()
    assert {"GatewaySettings", "OrchestratorSettings", "AnthropicSettings"} <= {c.__name__ for c in classes}
    missing = sorted(
        f"{cls.__name__}.{field}: {field.upper()}"
        for cls in classes
        for field in cls.model_fields
        if field.upper() not in documented
    )
    assert missing == [], f"add a row to docs/configuration.md for: {', '.join(missing)}"

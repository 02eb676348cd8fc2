"""Which provider each agent gets: its own setting, then LLM_PROVIDER, then the first configured in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.llm import registry
from agentmesh.settings import load_settings
from orchestrator_svc.settings import OrchestratorSettings
from synthesizer_svc.settings import SynthesizerSettings
from worker_svc.settings import WorkerSettings

PROVIDER_VARIABLES = ("LLM_PROVIDER", "ORCHESTRATOR_PROVIDER", "WORKER_PROVIDER", "SYNTHESIZER_PROVIDER")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for entry in registry.PROVIDERS.values():
        for variable in entry.credentials:
            monkeypatch.delenv(variable, raising=False)
    for variable in PROVIDER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_without_any_setting_every_agent_is_offline() -> None:
    for settings in (OrchestratorSettings(), WorkerSettings(), SynthesizerSettings()):
        assert settings.provider_choice() == ("the default provider", "offline")


def test_an_anthropic_key_makes_anthropic_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert WorkerSettings().provider == "anthropic"


def test_a_key_in_dotenv_counts_like_one_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-from-dotenv\nLLM_PROVIDER=offline\n")
    assert registry.environment()["ANTHROPIC_API_KEY"] == "sk-ant-from-dotenv"
    assert WorkerSettings().provider == "offline"
    monkeypatch.setenv("LLM_PROVIDER", "anthropic")  # the real environment wins over .env
    assert WorkerSettings().provider_choice() == ("LLM_PROVIDER", "anthropic")


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_an_openai_key_or_base_url_makes_openai_the_default(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:11434/v1")
    assert WorkerSettings().provider == "openai"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert WorkerSettings().provider == "anthropic"  # Anthropic comes first when both are configured


def test_openai_without_credentials_names_both_ways_to_configure_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    with pytest.raises(SystemExit):
        load_settings(SynthesizerSettings)
    assert "LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL" in capsys.readouterr().err


def test_an_agent_setting_overrides_llm_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("LLM_PROVIDER", "anthropic")
    monkeypatch.setenv("WORKER_PROVIDER", "offline")
    assert WorkerSettings().provider_choice() == ("WORKER_PROVIDER", "offline")
    assert SynthesizerSettings().provider_choice() == ("LLM_PROVIDER", "anthropic")
    assert OrchestratorSettings().model == "claude-sonnet-4-6"


def test_a_provider_without_credentials_stops_start_up_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_PROVIDER", "anthropic")
    with pytest.raises(SystemExit):
        load_settings(OrchestratorSettings)
    assert "ORCHESTRATOR_PROVIDER=anthropic needs ANTHROPIC_API_KEY" in capsys.readouterr().err
    WorkerSettings()  # the other agents are not concerned


def test_an_unknown_provider_is_refused_with_the_known_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_PROVIDER", "gemini")
    with pytest.raises(SystemExit):
        load_settings(WorkerSettings)
    err = capsys.readouterr().err
    assert "WORKER_PROVIDER" in err
    assert f"use one of {', '.join(registry.PROVIDERS)}" in err


async def test_every_registered_module_builds_its_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, entry in registry.PROVIDERS.items():
        for variable in entry.credentials[:1]:
            monkeypatch.setenv(variable, "test-credential")
        provider = registry.load(name)()  # builds its client; no request is sent
        try:
            assert provider.name == name
        finally:
            await provider.aclose()


def test_plans_of_up_to_256_subtasks_are_allowed_and_larger_caps_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SUBTASKS", "256")
    assert OrchestratorSettings().max_subtasks == 256
    monkeypatch.setenv("MAX_SUBTASKS", "257")
    with pytest.raises(ValueError, match="less than or equal to 256"):
        OrchestratorSettings()


def test_a_rate_limit_storage_that_is_neither_memory_nor_redis_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URI", "memcached://cache:11211")
    with pytest.raises(ValueError, match="expected memory:// or redis://"):
        WorkerSettings()

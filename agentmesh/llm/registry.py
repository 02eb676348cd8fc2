"""Every model backend by name: the one list a new provider joins (vLLM's model registry is the shape).

Each entry names a module defining ``create() -> LLMProvider`` (it reads its own settings) and the variables
that configure it. The module is imported only when an agent uses it: the SDKs take a second to load.
Without a configured choice an agent gets the first entry here whose variables are set (entries needing
none come last).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from dotenv import dotenv_values
from pydantic import AfterValidator

from agentmesh.llm import prompt_cache
from agentmesh.llm.provider import LLMProvider


@dataclass(frozen=True)
class ProviderEntry:
    module: str
    credentials: tuple[str, ...] = ()  # any one of these set configures the provider; () needs none
    # The fewest tokens of a prompt prefix the API caches, by model; None: it caches nothing.
    cache_minimum: Callable[[str], int] | None = None


PROVIDERS: Mapping[str, ProviderEntry] = {
    "anthropic": ProviderEntry(
        "agentmesh.llm.anthropic", ("ANTHROPIC_API_KEY",), cache_minimum=prompt_cache.anthropic_minimum
    ),
    "openai": ProviderEntry(
        "agentmesh.llm.openai", ("OPENAI_API_KEY", "OPENAI_BASE_URL"), cache_minimum=prompt_cache.openai_minimum
    ),
    "offline": ProviderEntry("agentmesh.llm.offline"),
}


def environment(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """The variables as settings see them: ``.env`` overridden by the real environment, names upper-cased."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update((k.upper(), v) for k, v in dotenv_values(env_file).items() if v)
    values.update((k.upper(), v) for k, v in os.environ.items() if v)
    return values


def configured(name: str, env: Mapping[str, str]) -> bool:
    credentials = PROVIDERS[name].credentials
    return not credentials or any(env.get(variable) for variable in credentials)


def default_provider(env: Mapping[str, str]) -> str:
    return next(name for name in PROVIDERS if configured(name, env))


def missing_credentials(name: str, env: Mapping[str, str]) -> str | None:
    """What to set for ``name`` to work, or None when it is configured."""
    if configured(name, env):
        return None
    return " or ".join(PROVIDERS[name].credentials)


def check_name(name: str) -> str:
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}: use one of {', '.join(PROVIDERS)}")
    return name


def load(name: str) -> Callable[[], LLMProvider]:
    """The ``create`` of provider ``name``; importing its module loads its SDK."""
    module = importlib.import_module(PROVIDERS[check_name(name)].module)
    return cast(Callable[[], LLMProvider], module.create)


def caches(name: str, model: str, tokens: int) -> bool:
    """Whether provider ``name``'s API caches a prefix of ``tokens`` tokens for ``model``."""
    minimum = PROVIDERS[check_name(name)].cache_minimum
    return minimum is not None and tokens >= minimum(model)


# A provider name checked against the registry, so a new provider needs no change where names are read.
ProviderName = Annotated[str, AfterValidator(check_name)]

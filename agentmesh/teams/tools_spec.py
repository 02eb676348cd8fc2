"""A specialist's MCP servers and tool allow-list, as its front matter declares them (docs/tools.md).

Secrets never sit in a team file: ``env`` lists the names of the worker's environment variables a stdio server
gets, and each ``headers`` value names the variable holding that header's value. Names are capitals, digits and
``_``, so a pasted token (``ghp_...``, ``Bearer ...``) is refused rather than taken for a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# A server's name starts every model-facing tool name (f"{server}__{tool}", at most 64 characters of
# [A-Za-z0-9_-] on both providers' APIs) and labels metrics: short, simple, and without the "__" separator.
SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# An MCP tool name (the spec allows letters, digits, '_', '-', '.' and '/'), or * for all of a server's tools.
TOOL_NAME = re.compile(r"[A-Za-z0-9_./-]{1,128}|\*")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
NOT_VALUES = "names of the worker's environment variables (capitals, digits, _), never their values"


@dataclass(frozen=True)
class McpServerSpec:
    """One MCP server: stdio (``command``) or streamable HTTP (``url``); hashable, so equal specs share a session."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    # Environment variable names passed through to a stdio server, besides the SDK's safe defaults (PATH, HOME ...).
    env: tuple[str, ...] = ()
    url: str | None = None
    # (header, environment variable name) pairs sent with every HTTP request.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable-http"


def _server_name(value: str) -> str:
    if not SERVER_NAME.fullmatch(value) or "__" in value:
        raise ValueError(
            f"{value!r}: a server's name is a letter, then up to 31 letters, digits, '_' or '-', without '__' "
            "(it prefixes the tool names the model sees)"
        )
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable's name: give {NOT_VALUES}")
    return value


def _tool_pattern(value: str) -> str:
    server, dot, tool = value.partition(".")
    if not dot or not TOOL_NAME.fullmatch(tool):
        raise ValueError(f"{value!r}: an allowed tool is server.tool, or server.* for all of one server's tools")
    _server_name(server)
    return value


ServerName = Annotated[str, AfterValidator(_server_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ToolPattern = Annotated[str, AfterValidator(_tool_pattern)]


class McpServerEntry(BaseModel):
    """One item of ``mcp_servers`` in a front matter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ServerName
    command: str | None = Field(default=None, min_length=1, description="stdio: the program to start")
    args: list[str] = Field(default_factory=list)
    env: list[EnvName] = Field(default_factory=list, description="variables passed through, by name")
    url: str | None = Field(default=None, pattern=r"^https?://\S+$", description="streamable HTTP endpoint")
    headers: dict[str, EnvName] = Field(default_factory=dict, description="header -> variable holding its value")

    @field_validator("env", mode="before")
    @classmethod
    def _names_not_values(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            raise ValueError(f"a list of {NOT_VALUES}, e.g. [GITHUB_TOKEN], not a mapping of values")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header in value:
            if not HEADER_NAME.fullmatch(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server {self.name!r}: give either command (stdio) or url (streamable HTTP), not both")
        if self.url is not None and (self.args or self.env):
            raise ValueError(f"server {self.name!r}: args and env are for a stdio server (command), not a url")
        if self.command is not None and self.headers:
            raise ValueError(f"server {self.name!r}: headers are for a streamable HTTP server (url), not a command")
        return self

    def spec(self) -> McpServerSpec:
        return McpServerSpec(
            name=self.name,
            command=self.command,
            args=tuple(self.args),
            env=tuple(self.env),
            url=self.url,
            headers=tuple(self.headers.items()),
        )


def check_tools(servers: list[McpServerEntry], tools: list[str]) -> str | None:
    """What is wrong between ``mcp_servers`` and ``tools`` (as ``field: message``), or None."""
    names = [server.name for server in servers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        return f"mcp_servers: the server name {duplicates[0]!r} is given twice"
    for pattern in tools:
        server = pattern.partition(".")[0]
        if server not in names:
            known = ", ".join(names) or "none: add mcp_servers"
            return f"tools: {pattern!r} names no server of this file's mcp_servers ({known})"
    repeated = sorted({pattern for pattern in tools if tools.count(pattern) > 1})
    if repeated:
        return f"tools: {repeated[0]!r} is listed twice"
    unused = [name for name in names if not any(pattern.partition(".")[0] == name for pattern in tools)]
    if unused:
        return f"mcp_servers: server {unused[0]!r} has no tool in tools (allow server.* or the tools it may call)"
    return None

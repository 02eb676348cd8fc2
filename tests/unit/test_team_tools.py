"""A specialist's tools in its front matter: what they become, and each bad entry stopping start-up (file, field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.settings import DEFAULT_TEAMS_DIR
from agentmesh.teams.loader import load_teams
from agentmesh.teams.spec import TeamError
from agentmesh.teams.tools_spec import McpServerSpec
from tests.unit.test_teams import DEFAULTS, write_team

TOOLS = """---
description: looks things up
mcp_servers:
  - name: demo
    command: python
    args: [-m, agentmesh.tools.demo_server]
    env: [DEMO_TOKEN]
  - name: remote
    url: http://127.0.0.1:9/mcp
    headers: {Authorization: REMOTE_AUTH}
tools: [demo.*, remote.lookup]
max_turns: 3
tool_timeout: 2.5
---
Look it up.
"""


def test_a_specialists_servers_allow_list_and_limits_become_its_spec(tmp_path: Path) -> None:
    write_team(tmp_path, w=TOOLS)
    spec = load_teams(tmp_path, DEFAULTS).by_name["default"].workers["w"]
    assert spec.mcp_servers == (
        McpServerSpec(name="demo", command="python", args=("-m", "agentmesh.tools.demo_server"), env=("DEMO_TOKEN",)),
        McpServerSpec(name="remote", url="http://127.0.0.1:9/mcp", headers=(("Authorization", "REMOTE_AUTH"),)),
    )
    assert spec.mcp_servers[0].transport == "stdio" and spec.mcp_servers[1].transport == "streamable-http"
    assert (spec.tools, spec.max_turns, spec.tool_timeout_s) == (("demo.*", "remote.lookup"), 3, 2.5)


def test_a_specialist_without_tools_gets_the_defaults(tmp_path: Path) -> None:
    write_team(tmp_path)
    spec = load_teams(tmp_path, DEFAULTS).by_name["default"].workers["solo"]
    assert (spec.mcp_servers, spec.tools, spec.max_turns, spec.tool_timeout_s) == ((), (), 8, 30.0)


def test_the_shipped_researcher_uses_the_demo_server_over_stdio() -> None:
    spec = load_teams(DEFAULT_TEAMS_DIR, DEFAULTS).by_name["research"].workers["researcher"]
    (server,) = spec.mcp_servers
    assert (server.name, server.command, server.args) == ("demo", "python", ("-m", "agentmesh.tools.demo_server"))
    assert spec.tools and all(pattern.startswith("demo.") for pattern in spec.tools)


def front(servers: str, tools: str = "[s.*]") -> str:
    return f"---\ndescription: d\nmcp_servers:\n{servers}tools: {tools}\n---\nP.\n"


STDIO = "  - name: s\n    command: run-it\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (front(STDIO, "[other.lookup]"), r"w\.md: field 'tools': 'other\.lookup' names no server .*\(s\)"),
        (front("  - name: s\n"), r"w\.md, line 4: field 'mcp_servers\[0\]': .*either command \(stdio\) or url"),
        (
            front("  - name: s\n    command: c\n    url: http://h/mcp\n"),
            r"field 'mcp_servers\[0\]': .*either command .* not both",
        ),
        (
            front("  - name: s\n    command: c\n    env: {GITHUB_TOKEN: ghp_abc123}\n"),
            r"w\.md, line 6: field 'mcp_servers\[0\]\.env': .*names of the worker's environment .*not a mapping",
        ),
        (
            front("  - name: s\n    command: c\n    env: [ghp_abc123]\n"),
            r"field 'mcp_servers\[0\]\.env\[0\]': 'ghp_abc123' is not an environment variable's name",
        ),
        (
            front("  - name: s\n    url: http://h/mcp\n    headers: {Authorization: Bearer sk-123}\n"),
            r"field 'mcp_servers\[0\]\.headers\.Authorization': 'Bearer sk-123' is not an environment variable",
        ),
        (front(STDIO + STDIO), r"w\.md: field 'mcp_servers': the server name 's' is given twice"),
        (
            front("  - name: my__server\n    command: c\n", "[my__server.*]"),
            r"field 'mcp_servers\[0\]\.name': 'my__server': a server's name is a letter",
        ),
        (front("  - name: a.b\n    command: c\n", "[a.*]"), r"field 'mcp_servers\[0\]\.name'"),
        (front(STDIO, "[s]"), r"field 'tools\[0\]': 's': an allowed tool is server\.tool, or server\.\*"),
        (front(STDIO, "[s.a, s.a]"), r"field 'tools': 's\.a' is listed twice"),
        (front(STDIO, "[]"), r"field 'mcp_servers': server 's' has no tool in tools"),
        (front("  - name: s\n    url: ftp://h/x\n"), r"field 'mcp_servers\[0\]\.url'"),
        (front("  - name: s\n    command: c\n    headers: {X-A: A}\n"), r"headers are for a streamable HTTP"),
        (front("  - name: s\n    command: c\n    cmd: d\n"), r"field 'mcp_servers\[0\]\.cmd': unknown key"),
        ("---\ndescription: d\nmax_turns: 0\n---\nP.\n", r"w\.md, line 3: field 'max_turns'"),
        ("---\ndescription: d\ntool_timeout: -1\n---\nP.\n", r"w\.md, line 3: field 'tool_timeout'"),
    ],
    ids=[
        "unknown-server",
        "no-transport",
        "both-transports",
        "inline-env-values",
        "env-value-for-name",
        "inline-header-value",
        "duplicate-server",
        "double-underscore",
        "dot-in-name",
        "bad-pattern",
        "duplicate-tool",
        "unused-server",
        "bad-url",
        "headers-on-stdio",
        "unknown-server-key",
        "zero-turns",
        "negative-timeout",
    ],
)
def test_a_bad_tools_entry_names_the_file_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    write_team(tmp_path, w=text)
    with pytest.raises(TeamError, match=expected):
        load_teams(tmp_path, DEFAULTS)


def test_only_a_worker_specialist_has_tools(tmp_path: Path) -> None:
    folder = write_team(tmp_path)
    (folder / "synthesizer.md").write_text(front(STDIO).replace("description: d\n", ""))
    with pytest.raises(TeamError, match=r"synthesizer\.md: field 'mcp_servers': only a worker specialist"):
        load_teams(tmp_path, DEFAULTS)

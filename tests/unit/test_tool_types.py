"""What the model gets from a tool: its name on both APIs, a capped result as text, and the metric's tool label."""

from __future__ import annotations

import mcp_types as types

from agentmesh.tools.toolbox import allowed, metric_tool, result_text
from agentmesh.tools.types import MODEL_NAME, ToolDefinition, cap, model_name
from tests.support.mcp_servers import specialist, time_server


def test_a_model_name_is_server_and_tool_valid_on_both_apis() -> None:
    assert ToolDefinition("git", "log", "", {}).model_name == "git__log"
    assert model_name("fs", "read.file/v2") == "fs__read_file_v2"
    long = model_name("server", "t" * 100)
    assert len(long) == 64 and MODEL_NAME.fullmatch(long)


def test_a_long_text_is_cut_to_the_limit_and_says_so() -> None:
    assert cap("short", 10) == "short"
    cut = cap("y" * 1000, 300)
    assert len(cut) == 300 and cut.startswith("yyy") and cut.endswith("[result cut: 300 of 1000 characters shown]")


def test_a_result_becomes_text_whatever_its_blocks() -> None:
    text = types.TextContent(type="text", text="first")
    image = types.ImageContent(type="image", data="aGk=", mime_type="image/png")
    resource = types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri="file:///a.txt", text="inside")
    )
    assert result_text(types.CallToolResult(content=[text, image, resource])) == "first\n[image content]\ninside"
    assert result_text(types.CallToolResult(content=[], structured_content={"n": 3})) == '{"n": 3}'


def test_the_allow_list_and_the_metric_label() -> None:
    spec = specialist(time_server("time"), time_server("clock"), tools=("time.get_current_time", "clock.*"))
    assert allowed(spec, "time", "get_current_time") and not allowed(spec, "time", "convert_time")
    assert allowed(spec, "clock", "anything")
    assert metric_tool(spec, "time", "get_current_time") == "get_current_time"
    assert metric_tool(spec, "clock", "anything") == "*"  # server.*: the server's names mint no series

"""Tools for specialists: MCP servers per specialist, one session per server per worker process (docs/tools.md)."""

from agentmesh.tools.settings import ToolSettings
from agentmesh.tools.toolbox import Toolbox
from agentmesh.tools.types import Outcome, ToolDefinition, ToolOutcome

__all__ = ["Outcome", "ToolDefinition", "ToolOutcome", "ToolSettings", "Toolbox"]

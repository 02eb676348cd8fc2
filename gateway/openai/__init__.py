"""The OpenAI API: its shapes and errors, translation to and from the orchestrator, SSE, the chat and models routes."""

"""The worker service: runs one subtask with one LLM call, or a bounded tool loop for a specialist with tools."""

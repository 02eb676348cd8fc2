"""The worker service: runs one subtask with one LLM call."""

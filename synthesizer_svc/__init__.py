"""The synthesizer service: streams the final answer from every subtask's result."""

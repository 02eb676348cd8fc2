"""OpenAI's Responses API: runs that can outlive their connection (background mode, resumable streams)."""

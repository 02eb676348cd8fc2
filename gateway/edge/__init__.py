"""Who may call, and how much: JWT authentication, the caller's identity, rate limits and request limits."""

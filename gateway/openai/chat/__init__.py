"""POST /v1/chat/completions: a thin router and the serving object that runs each completion."""

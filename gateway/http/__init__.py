"""HTTP concerns of every route: the h11 protocol, framing, HEAD, body limits, strict JSON, headers, logs, metrics."""

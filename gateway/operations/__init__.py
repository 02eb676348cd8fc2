"""Operations endpoints: liveness, readiness (and draining) and the Prometheus metrics."""

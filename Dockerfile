# One image for all four services; the command chooses which one runs:
#   python -m gateway | orchestrator_svc | worker_svc | synthesizer_svc
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentmesh/ agentmesh/
COPY gateway/ gateway/
COPY orchestrator_svc/ orchestrator_svc/
COPY worker_svc/ worker_svc/
COPY synthesizer_svc/ synthesizer_svc/
RUN pip install . \
    && groupadd --system --gid 10001 agentmesh \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home agentmesh

# Run from an empty directory, so the installed package is what gets imported; the teams live beside it
# (compose and the Kubernetes manifests mount their own over them).
WORKDIR /app
COPY teams/ /app/teams/
# Numeric, so Kubernetes can check runAsNonRoot against the image (the manifests set runAsUser: 10001 too).
USER 10001:10001
# Containers listen on every interface (a bare process defaults to loopback); each gRPC service sets its
# GRPC_LISTEN in compose or its manifest.
ENV LOG_FORMAT=json \
    API_HOST=0.0.0.0 \
    TEAMS_DIR=/app/teams
EXPOSE 8000 50051 50052 50053
CMD ["python", "-m", "gateway"]

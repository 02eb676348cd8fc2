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
    && useradd --system --uid 10001 --user-group --home-dir /app --create-home agentmesh

# Run from an empty directory, so the installed package is what gets imported.
WORKDIR /app
USER agentmesh
ENV LOG_FORMAT=json \
    API_HOST=0.0.0.0
EXPOSE 8000 50051 50052 50053
CMD ["python", "-m", "gateway"]

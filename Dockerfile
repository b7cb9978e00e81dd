# skybroker: the server command. One image runs every role, by its arguments:
#   docker run IMAGE apiserver --etcd-endpoints URL,… --listen 0.0.0.0:7480 --token-file F …
#   docker run IMAGE controller --etcd-endpoints URL,… --health-listen 0.0.0.0:8081 …
# deploy/compose.yaml runs both (tests/unit/test_deploy.py checks this file against it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api_types ./api_types
COPY controller ./controller
COPY apiserver ./apiserver
COPY skyctl ./skyctl
COPY providers ./providers
COPY reconcilers ./reconcilers
COPY skybroker ./skybroker
# /var/lib/skybroker: the simulated clouds' state (--simulated-state-dir), owned by the user so
# that a volume mounted there starts out writable by it.
RUN pip install . \
    && useradd --system --uid 10001 skybroker \
    && install -d -o skybroker -g skybroker -m 0750 /var/lib/skybroker
USER skybroker

EXPOSE 7480 8081
ENTRYPOINT ["skybroker"]
CMD ["controller", "--etcd-endpoints", "http://etcd-0:2379,http://etcd-1:2379,http://etcd-2:2379"]

# skybroker: the server command (`skybroker controller`, later `skybroker apiserver`).
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
RUN pip install . \
    && useradd --system --uid 10001 skybroker
USER skybroker

EXPOSE 7480 8081
ENTRYPOINT ["skybroker"]
CMD ["controller", "--etcd-endpoints", "http://etcd-0:2379,http://etcd-1:2379,http://etcd-2:2379"]

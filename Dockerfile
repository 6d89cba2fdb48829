# Switchyard gateway image: switchyard-server (entrypoint) and switchyardctl.
#   docker build -t switchyard:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8080:8080 -v switchyard-data:/var/lib/switchyard \
#     -e SWITCHYARD_MASTER_KEY="k1:$(openssl rand -base64 32)" switchyard:0.1.0
# Needs BuildKit (the default builder since Docker 23) for the compiler cache mount.

# --- build: the same packages and commands as a developer machine ------------------------------
FROM debian:12 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# scripts/bootstrap.sh is the single list of build packages; copied alone so that the package
# layer is reused until that list changes.
COPY scripts/bootstrap.sh scripts/bootstrap.sh
RUN scripts/bootstrap.sh \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# scripts/build.sh configures with CMake (Ninja, RelWithDebInfo) and builds; only the two
# programs the image ships, not the tests. Debug sections are stripped, symbols stay for stack
# traces.
RUN --mount=type=cache,target=/root/.cache/switchyard-ccache \
    scripts/build.sh --target switchyard-server switchyardctl \
 && install -d /out \
 && strip --strip-debug -o /out/switchyard-server build/server/switchyard-server \
 && strip --strip-debug -o /out/switchyardctl build/client/switchyardctl

# --- runtime: the shared libraries of the build packages, nothing else ---------------------------
FROM debian:12-slim AS runtime
ARG VERSION=0.1.0
# Runtime counterparts of libgrpc++-dev, libprotobuf-dev, libabsl-dev, libssl-dev,
# libsqlite3-dev, prometheus-cpp-dev (core), libcurl4-openssl-dev, libpq-dev and
# libgoogle-perftools-dev (tcmalloc); sqlite3 is the CLI
# used for online backups of the embedded store.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates \
      libabsl20220623 \
      libcurl4 \
      libgrpc++1.51 \
      libgrpc29 \
      libpq5 \
      libprometheus-cpp-core1.0 \
      libprotobuf32 \
      libsqlite3-0 \
      libssl3 \
      libtcmalloc-minimal4 \
      sqlite3 \
 && rm -rf /var/lib/apt/lists/*
# Non-root user; the Helm chart runs the pods as the same uid/gid (securityContext.runAsUser).
RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/switchyard --no-create-home \
      --shell /usr/sbin/nologin switchyard \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/switchyard
COPY --from=build /out/switchyard-server /out/switchyardctl /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/switchyard
# gRPC, HTTP (webhooks, metrics, status), optional plaintext health listener (--health_listen).
EXPOSE 50051 8080 8081
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Switchyard integration gateway (gRPC)" \
      org.opencontainers.image.version="${VERSION}"
# The server handles SIGTERM itself (drains, then exits), also as PID 1.
ENTRYPOINT ["/usr/local/bin/switchyard-server", "--data_dir=/var/lib/switchyard"]

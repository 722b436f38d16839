# osmium-chat container image.
#
#   docker build -t osmium-chat .
#
# Four stages: `chef` (the toolchain plus cargo-chef), `planner` (reduces the
# workspace to a dependency recipe), `builder` (compiles the dependencies from
# that recipe in their own layer, then the service), and the runtime image.
# The dependency layer is rebuilt only when Cargo.toml or Cargo.lock change,
# not on every source edit.

# The toolchain the project is developed and tested with (see rust-version in
# Cargo.toml for the minimum). Bookworm matches the runtime's glibc.
FROM rust:1.95-slim-bookworm AS chef
# Pinned so that image builds are reproducible; --locked uses its own lockfile.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build
# Smaller binary without touching Cargo.toml; set here so that the cooked
# dependencies and the final build share one profile.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# protox compiles proto/ in build.rs: no protoc is needed here.
RUN cargo build --release --locked --bin osmium-chat

# distroless/cc carries glibc, libgcc and CA certificates and nothing else: no
# shell, no package manager, no compiler. The :nonroot tag runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="osmium-chat" \
      org.opencontainers.image.description="gRPC service for the chats of the Osmium Chat Protocol" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /build/target/release/osmium-chat /usr/local/bin/osmium-chat
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# Bind all interfaces inside the container (the binary's default is loopback
# only), so `docker run -p` works. Off loopback the service needs a token key
# of its own: OSMIUM_JWT_SECRET, OSMIUM_JWT_PUBLIC_KEYS or OSMIUM_JWT_JWKS.
ENV OSMIUM_LISTEN_ADDR=0.0.0.0:50051 \
    OSMIUM_METRICS_ADDR=0.0.0.0:9090 \
    OSMIUM_LOG_FORMAT=json
# 50051: gRPC (chat, user directory, health, reflection); 9090: Prometheus.
EXPOSE 50051 9090
# SIGTERM starts the drain (OSMIUM_SHUTDOWN_TIMEOUT); the exec form makes the
# service PID 1 so it receives the signal directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["osmium-chat"]

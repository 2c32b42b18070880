# syntax=docker/dockerfile:1
# Waygate container image: a static-enough release build on Debian, run as a non-root user
# on a read-only root file system with the data directory as a volume.
#
#   docker build -t waygate .
#   docker run --read-only -p 8080:8080 -v waygate-data:/data \
#     -e WAYGATE_HTTP__ALLOWED_HOSTS='["localhost","127.0.0.1"]' waygate
#
# The listener is 0.0.0.0:8080 inside the container, so the DNS-rebinding guard needs the
# host names clients use (`[http] allowed_hosts`, or "*" behind a proxy that checks them).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the code does not refetch them.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
COPY examples ./examples
COPY fuzz ./fuzz
COPY bench ./bench
ARG WAYGATE_GIT_COMMIT=unknown
ENV WAYGATE_GIT_COMMIT=${WAYGATE_GIT_COMMIT}
RUN cargo build --release --locked -p waygate \
 && install -D -m 0755 target/release/waygate /out/waygate

FROM debian:bookworm-slim AS runtime
# CA certificates for HTTPS upstreams, OAuth issuers and OTLP; tini reaps the stdio
# upstreams' grandchildren and forwards SIGTERM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 waygate \
 && useradd --system --uid 10001 --gid waygate --home-dir /data --shell /usr/sbin/nologin waygate \
 && install -d -o waygate -g waygate -m 0700 /data
COPY --from=build /out/waygate /usr/local/bin/waygate
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV WAYGATE_DATA_DIR=/data \
    WAYGATE_LISTEN=0.0.0.0:8080 \
    WAYGATE_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/waygate", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/waygate"]
CMD ["serve"]

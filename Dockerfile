# syntax=docker/dockerfile:1
# latchkeyd, the Latchkey authorization server, as a container image:
#   docker build -t latchkeyd .
#   docker run -d --name latchkeyd -p 7878:7878 -v latchkey:/var/lib/latchkey \
#     -e LATCHKEY_ISSUER=https://login.example.com latchkeyd
#   docker exec -i latchkeyd latchkeyd user add alice@example.com --password-stdin < password.txt
# State (the SQLite database and the master key) lives in the /var/lib/latchkey volume. Every
# setting can be given as a LATCHKEY_* variable (see the README, "Operating latchkeyd"), e.g.
# LATCHKEY_DATABASE=postgres://… and LATCHKEY_MASTER_KEY for replicas.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cargo caches stay in BuildKit cache mounts; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p latchkeyd \
    && install -D -m 0755 target/release/latchkeyd /out/latchkeyd

FROM debian:bookworm-slim
ARG UID=10001
RUN groupadd --system --gid "$UID" latchkey \
    && useradd --system --uid "$UID" --gid latchkey --home-dir /var/lib/latchkey --no-create-home \
       --shell /usr/sbin/nologin latchkey \
    && install -d -o latchkey -g latchkey -m 0750 /var/lib/latchkey
COPY --from=build /out/latchkeyd /usr/bin/latchkeyd
# These defaults are for trying latchkeyd on your own machine: plain http, an issuer of
# http://localhost:7878, every client address as the container sees it. latchkeyd warns at
# start that it serves plain http beyond loopback. For anything else set LATCHKEY_ISSUER to
# the https URL people use, put a TLS reverse proxy in front, and set
# LATCHKEY_TRUST_FORWARDED_FOR=true so that rate limits see each client's own address.
ENV LATCHKEY_LISTEN=0.0.0.0:7878 \
    LATCHKEY_ISSUER=http://localhost:7878 \
    LATCHKEY_DATABASE=sqlite:///var/lib/latchkey/latchkey.db \
    LATCHKEY_MASTER_KEY_FILE=/var/lib/latchkey/master.key \
    LATCHKEY_LOG_FORMAT=json \
    HOME=/var/lib/latchkey \
    XDG_DATA_HOME=/var/lib/latchkey
USER latchkey:latchkey
WORKDIR /var/lib/latchkey
VOLUME ["/var/lib/latchkey"]
EXPOSE 7878
# /healthz checks the database. No curl in the image: bash's /dev/tcp speaks the HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LATCHKEY_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM (docker stop) finishes the requests in flight and exits 0.
ENTRYPOINT ["/usr/bin/latchkeyd"]
CMD ["serve"]

# A Swift build image made from the toolchain already on the machine
# (SWIFT_TOOLCHAIN, default /opt/swift), for machines without a registry: the
# equivalent of swift:6.x-bookworm plus the gateway's C libraries. scripts/images
# stages the toolchain's usr/ as the context and passes BASE_IMAGE.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# What swift:*-bookworm installs for the toolchain, plus libcurl, libjwt, nghttp2, OpenSSL, zlib.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      binutils-gold ca-certificates git gnupg2 libc6-dev libedit2 libgcc-12-dev libpython3.11 \
      libncurses6 libsqlite3-0 libstdc++-12-dev libxml2-dev pkg-config tzdata unzip zlib1g-dev \
      libcurl4-openssl-dev libjwt-dev libnghttp2-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

COPY usr /usr
RUN swift --version

# wsgate container image: `docker build -t wsgate .` (or `podman build`).
# Build stage: the project's own install script and `make build`, as on a developer machine.
FROM debian:bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash .ci/install-deps.sh && make build BUILD=/build JOBS="$(nproc)" CMAKE_ARGS=-DCMAKE_BUILD_TYPE=Release

# Runtime stage: only the shared libraries the binary links (the packages `ldd` + `dpkg -S` name
# for build/controlplane/main/wsgate), the binary and the admin UI files.
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates libabsl20220623 libc-ares2 libfmt9 libgrpc++1.51 libgrpc29 \
      libhiredis0.14 libprometheus-cpp-core1.0 libprotobuf32 libre2-9 libspdlog1.10 libssl3 \
      libyaml-cpp0.7 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 wsgate && useradd --uid 10001 --gid 10001 --no-create-home \
       --shell /usr/sbin/nologin wsgate
COPY --from=build /build/controlplane/main/wsgate /usr/local/bin/wsgate
# The admin UI's files: add `COPY --from=build /src/admin-ui/dist /usr/share/wsgate/admin-ui`
# here once admin-ui/ exists (it does not yet; a COPY of a missing path fails the build).
COPY examples/wsgate.yaml /etc/wsgate/wsgate.yaml
USER 10001:10001
EXPOSE 8080 8081 50051
ENTRYPOINT ["wsgate"]
CMD ["--config=/etc/wsgate/wsgate.yaml", "--listen=0.0.0.0", "--grpc-listen=0.0.0.0"]

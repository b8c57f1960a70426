# syntax=docker/dockerfile:1
#
# coalmine's image, for those who build with Docker. `make image` is the supported way: it
# builds the same image without a container engine, with the same digest every time, and the
# tests unpack it and run it (README, "Image"). This file puts the same files in (the static
# binary as /coalmine, /etc/passwd and /etc/group from cmd/coalmine-image/rootfs, the CA bundle,
# the nonroot user's home), with the same user, entrypoint and labels; but no test builds it:
# there is no Docker engine on the machines coalmine is developed on.
#
#   docker build -t ghcr.io/coalmine/coalmine:$(cat VERSION) --build-arg VERSION=$(cat VERSION) \
#       --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(git log -1 --format=%cI) .
#   docker buildx build --platform linux/amd64,linux/arm64 ... --push .
#
# deploy/deployment.yaml runs it as `/coalmine run --leader-elect ...`, watching CanaryPolicy objects.

ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles: no emulation needed
# for other architectures.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=unknown
ARG COMMIT=unknown
ARG DATE=unknown
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# As `make image` builds it: static, -trimpath, the version stamped as the Makefile's LDFLAGS do.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -o /coalmine \
      -ldflags="-s -w -X github.com/coalmine/coalmine/buildinfo.version=${VERSION} -X github.com/coalmine/coalmine/buildinfo.commit=${COMMIT} -X github.com/coalmine/coalmine/buildinfo.date=${DATE}" \
      ./cmd/coalmine
RUN mkdir -p -m 0700 /nonroot-home

# Nothing else: no shell, no package manager, no libc (the binary needs none).
FROM scratch
ARG VERSION=unknown
ARG COMMIT=unknown
ARG DATE=unknown
COPY cmd/coalmine-image/rootfs/etc/passwd cmd/coalmine-image/rootfs/etc/group /etc/
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /nonroot-home /home/nonroot
COPY --from=build /coalmine /coalmine
# Numeric, so that runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
LABEL org.opencontainers.image.title="coalmine" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.source="https://github.com/coalmine/coalmine"
ENTRYPOINT ["/coalmine"]

# syntax=docker/dockerfile:1
#
# coalmine's image: one static binary, /coalmine, on distroless as the nonroot user.
#
#   docker build -t ghcr.io/coalmine/coalmine:latest .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/coalmine/coalmine:latest --push .
#
# deploy/deployment.yaml runs it as `/coalmine run --policies /etc/coalmine/policies
# --metrics-addr :8080`. (Written without a Docker engine at hand: the build command is the
# one `go build` runs in CI, but the image itself has not been built here.)

ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles: no emulation needed
# for other architectures.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags='-s -w' -o /coalmine ./cmd/coalmine

# static-debian12: no libc needed (CGO_ENABLED=0), CA certificates for an HTTPS Prometheus, and
# /etc/passwd with the nonroot user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /coalmine /coalmine
# Numeric, so that runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/coalmine"]

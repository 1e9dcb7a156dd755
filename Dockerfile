# One image with every licenseha binary: the operator (manager), the member
# agent, the reference license server and the kubectl plugin, all static.
# `make image` builds the same image without Docker (hack/image): the same
# files, user, entrypoint and labels; `make image-push` on the same base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Stamped into the binaries as `make build` does (<binary> --version).
ARG VERSION=dev
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-X github.com/licenseha/licenseha/internal/version.Version=${VERSION} -X github.com/licenseha/licenseha/internal/version.Revision=${REVISION}" \
      -o /out/ ./cmd/...

# distroless static, user nonroot, pinned by digest (hack/make/image.mk: DISTROLESS).
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="licenseha" \
      org.opencontainers.image.description="Kubernetes operator that runs license servers as redundant groups" \
      org.opencontainers.image.source="https://github.com/licenseha/licenseha" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ /usr/local/bin/
# 65532 is distroless' "nonroot" user; member pods and the operator run as it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/manager"]

# One image with every licenseha binary: the operator (manager), the member
# agent, the reference license server and the kubectl plugin, all static.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# 65532 is distroless' "nonroot" user; member pods and the operator run as it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/manager"]

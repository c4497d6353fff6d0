# keyledger container image: a static Go binary on distroless, running as uid 65532.
#
#   docker build -t keyledger:local --build-arg VERSION="$(git describe --always --dirty)" .
#   docker compose up          # Postgres + first-run bootstrap + app (see docker-compose.yml)
#
# The image needs KEYLEDGER_DATABASE_URL and a master key (KEYLEDGER_MASTER_KEY_FILE,
# or KEYLEDGER_MASTER_KEY); it listens on 0.0.0.0:8080.

# ---- build ------------------------------------------------------------------
# The official golang image sets GOTOOLCHAIN=local, so this tag must be at least
# the `go` version in go.mod; pin a patch release with --build-arg GO_VERSION=1.26.8.
#
# Base images are named by tag here. To pin them by digest (reproducible builds; a
# moved tag cannot change the image), look the digest up and append it, e.g.:
#   docker buildx imagetools inspect golang:1.26-bookworm --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot --format '{{json .Manifest.Digest}}'
#   FROM gcr.io/distroless/static-debian12:nonroot@sha256:<digest>
# and let Dependabot or Renovate bump the digests.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS builder

ENV CGO_ENABLED=0

# The master-key directory. Distroless has no shell to mkdir/chown, so it is made here
# and copied into the final image owned by nonroot: a named volume mounted at /keys
# takes this ownership on first use, so the nonroot process can write the key into it.
RUN mkdir -m 0700 /keys

WORKDIR /src

# Modules in their own layer: re-downloaded only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# The *_templ.go files are committed, so no `templ generate` here. This is the same
# command as the Makefile's build target and CI (deploy/container_test.go checks they agree).
COPY . .
# VERSION is what `keyledger version` prints (.git is not in the build context, so
# it is passed in: docker build --build-arg VERSION="$(git describe --always --dirty)").
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keyledger ./cmd/keyledger

# ---- run --------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="keyledger" \
      org.opencontainers.image.description="Self-hosted ledger of a team's API keys, encrypted in Postgres" \
      org.opencontainers.image.source="https://github.com/keyledger/keyledger" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=builder /out/keyledger /keyledger
COPY --from=builder --chown=65532:65532 /keys /keys

# nonroot:nonroot, written numerically so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

# The binary defaults to 127.0.0.1:8080, which is unreachable from outside a container.
ENV KEYLEDGER_LISTEN=0.0.0.0:8080
EXPOSE 8080

# No curl in distroless: the binary checks its own /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/keyledger", "healthcheck"]

ENTRYPOINT ["/keyledger"]
CMD ["serve"]

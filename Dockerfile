# The marin image: what the kubernetes runner's Jobs run (`marin run-step`),
# and a self-contained marin for anyone with Docker.
#
#   docker build -t marin:dev .
#   docker run --rm marin:dev version
#
# Stage 1 builds the one binary (the built-in plugins are inside it); stage 2
# is a slim Debian with marin on PATH and the experiments (the quickstart's
# tokenizer included) in the working directory, so relative paths in the
# scripts resolve as they do in a checkout.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=go1.26.8+auto
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/marin ./cmd/marin

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/marin /usr/local/bin/marin
WORKDIR /marin
COPY experiments/ ./experiments/
ENTRYPOINT ["marin"]
CMD ["--help"]

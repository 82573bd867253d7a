# The local gateway (agentry serve, embedded Pebble store) as a container.
# No Docker engine runs on the build machine, so CI does not build this image;
# internal/kit/deploytest checks its essentials. See README, "Container".
#
#   docker build -t agentry --build-arg VERSION=$(git describe --always --dirty) .
#   docker run -p 127.0.0.1:8080:8080 -v agentry-data:/data agentry

FROM golang:1.26 AS build
WORKDIR /src
# Modules in a layer of their own: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The Makefile's build: a static binary, with the version stamped in.
RUN CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/agentry/agentry/internal/runtime/localgw.Version=${VERSION}" \
	-o /out/agentry ./cmd/agentry \
	&& mkdir -p /out/data

# No shell, no package manager; runs as the image's nonroot user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentry /usr/local/bin/agentry
# The data dir must exist and belong to that user before the volume is
# mounted: a new named volume takes the image's ownership.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Listen on every interface of the container (the default is loopback only);
# publish the port on the host's loopback unless the gateway is meant to be
# reached from outside. Set AGENTRY_PUBLIC_URL and AGENTRY_DOMAIN to what
# other gateways use to reach it.
ENV AGENTRY_ADDR=0.0.0.0:8080 \
	AGENTRY_DATA_DIR=/data \
	AGENTRY_PUBLIC_URL=http://localhost:8080
VOLUME ["/data"]
EXPOSE 8080
# The binary probes its own /readyz (the image has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
	CMD ["/usr/local/bin/agentry", "healthcheck", "-timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/agentry"]
CMD ["serve"]

# Multi-stage build of the static sandcat binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/sandcat ./cmd/sandcat

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/sandcat /usr/local/bin/sandcat
WORKDIR /var/lib/sandcat
EXPOSE 50000 50001
ENTRYPOINT ["/usr/local/bin/sandcat"]

# syntax=docker/dockerfile:1
# A ppos node. Build: `docker build -t ppos .`; run (journal and NATS elsewhere):
#   docker run --rm -p 127.0.0.1:9464:9464 -e PPOS_NODE_ID=a \
#     -e PPOS_DATABASE_URL=postgres://ppos@db:5432/ppos -e PGPASSWORD=... \
#     -e PPOS_NATS_URL=nats://nats:4222 -e PPOS_NATS_USER=ppos-node -e PPOS_NATS_PASS=... ppos
# Every other subcommand runs the same way: `docker run --rm ... ppos verify --all`.
# Without PPOS_DATABASE_URL the node runs the embedded PostgreSQL in /data: mount a volume there.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` would build before the sources are here, and
# the build needs no dependency's install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
# Everything .dockerignore lets through (sources, tsconfig, the dashboard), whatever the build includes.
COPY . .
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. `npm rebuild` then runs the dependencies' install scripts (the
# embedded PostgreSQL restores its libraries' symlinks) but not the package's own `prepare`.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild \
 && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/actors ./dist/actors
COPY --from=build /src/dist/runtime ./dist/runtime
COPY --from=build /src/dist/persistence ./dist/persistence
COPY --from=build /src/dist/dashboard ./dist/dashboard
COPY deploy/docker/healthcheck.mjs ./deploy/docker/healthcheck.mjs
# A user of its own, no shell, no home to write to; /data for the embedded PostgreSQL.
RUN groupadd --system --gid 10001 ppos \
 && useradd --system --uid 10001 --gid ppos --no-create-home --shell /usr/sbin/nologin ppos \
 && mkdir -p /data && chown ppos:ppos /data && chmod 0700 /data
USER ppos:ppos
ENV PPOS_DATA_DIR=/data \
    PPOS_HTTP=0.0.0.0:9464
EXPOSE 9464
# node itself, not curl: the slim image has none. It reads the port from PPOS_HTTP.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
# `start` drains on SIGTERM (docker stop) and exits 0; give it time: `docker stop -t 30`.
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start"]

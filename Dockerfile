# syntax=docker/dockerfile:1
# One image for every Stride service (coordinator, worker, dashboard); docker-compose.yml picks
# the command. TypeScript runs as it is with tsx, like `npm start` does: there is no build step
# except the dashboard's static web app.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- manifests: only the package.json files and the lockfile, so the dependency layers below are
# rebuilt when dependencies change, not on every source edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out \
 && cp package.json package-lock.json .npmrc /out/ \
 && find libs apps tools -mindepth 2 -maxdepth 2 -name package.json -exec cp --parents {} /out/ \;

# --- deps: every dependency, dev ones included (vite builds the dashboard).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund

# --- build: the dashboard's static files.
FROM deps AS build
COPY . .
RUN npm run build -w @stride/dashboard

# --- prod-deps: runtime dependencies only (tsx is one of them).
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    STRIDE_DATA_DIR=/data \
    REDIS_URL=redis://redis:6379 \
    NX_DAEMON=false
WORKDIR /app
COPY --from=prod-deps --chown=root:root /app/ ./
COPY --chown=root:root . .
COPY --from=build --chown=root:root /app/apps/dashboard/dist ./apps/dashboard/dist
# The compute threads' JavaScript bundles, built while node_modules is writable (see
# libs/data/src/thread-bundle.ts): at run time, as `node`, the threads start on them. Without
# them the threads start through tsx (~0.5 s slower each), so a failure here does not fail the build.
RUN node --import tsx tools/scripts/src/thread-bundles.ts || echo 'thread bundles not built: threads will start through tsx'
# The code stays root-owned and read-only to the service user; only /data is writable. A named
# volume mounted on /data starts as a copy of this directory, ownership included.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4000 5173
# The coordinator with its HTTP API; the worker and dashboard services override the command.
# --initial-old-space-size, --interrupt-budget: see SERVICE_NODE_OPTIONS in libs/queue/src/queues.ts.
CMD ["node", "--initial-old-space-size=256", "--interrupt-budget=8192", "--import", "tsx", "apps/coordinator/src/main.ts"]

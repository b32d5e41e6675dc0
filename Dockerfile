# syntax=docker/dockerfile:1
# tradefleet image: `docker build -t tradefleet:dev .`
# One image for every process; the command picks it: producer (default), worker, migrate.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, compile TypeScript to dist/ -------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm ci` may refuse a lock that lacks another platform's optional binaries
# (see .ci/run); `npm install` with the same lock installs the same versions.
RUN npm ci --no-audit --no-fund || npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# --- deps: production dependencies only -----------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN (npm ci --omit=dev --no-audit --no-fund || npm install --omit=dev --no-audit --no-fund) \
 && npm cache clean --force

# --- runtime: dist/ + production node_modules, non-root ---------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# A numeric, non-root user: Kubernetes' runAsNonRoot can verify it (the manifests use 10001).
RUN groupadd --system --gid 10001 tradefleet \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tradefleet
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["producer"]

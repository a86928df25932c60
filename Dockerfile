# syntax=docker/dockerfile:1
# mcp-session-gateway: multi-stage build, Node 24 (the same major as the `node` devDependency).
#   docker build -t mcp-session-gateway .                          # the gateway (last stage)
#   docker build --target demo-upstream -t mcp-demo-upstream .     # the demo MCP server
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript ---------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install script in the tree is the `node` devDependency's, which fetches
# a Node binary for `npm run`; the image already has Node 24, and we call tsc directly below.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY demo ./demo
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# --- demo-upstream: the bundled stateless MCP server (needs the SDK, a devDependency) ------------
FROM ${NODE_IMAGE} AS demo-upstream
ENV NODE_ENV=production DEMO_UPSTREAM_HOST=0.0.0.0 DEMO_UPSTREAM_PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
CMD ["node", "dist/demo/serve-upstream.js"]

# --- runtime: the gateway, production dependencies only, non-root ---------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    MCP_GATEWAY_CONFIG=/etc/mcp-session-gateway/gateway.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The documented default config; mount your own file over it (or point MCP_GATEWAY_CONFIG elsewhere).
COPY config/gateway.yaml /etc/mcp-session-gateway/gateway.yaml
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# exec form: node runs as PID 1 and receives SIGTERM itself (it handles it), so shutdown is graceful.
CMD ["node", "dist/src/cli.js"]

# The service runtime: gateway (the default command), follow-up worker, staff bot,
# action server and migrations; docker-compose.yml picks the command. No Rasa here:
# the gateway reaches the assistant image over HTTP (RASA_URL).
# Build from the repository root (docker-compose.yml does):
#   docker build -f docker/service.Dockerfile -t wuye-service .
# The console's front-end files (htmx), from its lock file: no CDN at run time.
FROM node:20-slim AS console-assets
WORKDIR /console
COPY bot/console/package.json bot/console/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.10-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
WORKDIR /app
# WeasyPrint (the PDF reports) draws with pango, in Chinese with a CJK font.
RUN apt-get update && apt-get install -y --no-install-recommends libpangoft2-1.0-0 fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
COPY requirements/service.lock requirements/
RUN pip install --no-cache-dir "pip==24.3.1" \
 && pip install --no-cache-dir --no-deps -r requirements/service.lock \
 && pip check
COPY . .
COPY --from=console-assets /console/node_modules bot/console/node_modules
USER 1000
# 8080: the public WeChat listener. The staff API listener (STAFF_PORT, 8081) is not exposed:
# publish it only to the intranet reverse proxy (docker-compose.yml binds it to loopback).
EXPOSE 8080
CMD ["python", "-m", "bot", "serve", "--host", "0.0.0.0"]

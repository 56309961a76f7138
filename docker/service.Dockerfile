# The service runtime: gateway (the default command), follow-up worker, staff bot,
# action server and migrations; docker-compose.yml picks the command. No Rasa here:
# the gateway reaches the assistant image over HTTP (RASA_URL).
# Build from the repository root (docker-compose.yml does):
#   docker build -f docker/service.Dockerfile -t wuye-service .
FROM python:3.10-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements/service.lock requirements/
RUN pip install --no-cache-dir "pip==24.3.1" \
 && pip install --no-cache-dir --no-deps -r requirements/service.lock \
 && pip check
COPY . .
USER 1000
# 8080: the public WeChat listener. The staff API listener (STAFF_PORT, 8081) is not exposed:
# publish it only to the intranet reverse proxy (docker-compose.yml binds it to loopback).
EXPOSE 8080
CMD ["python", "-m", "bot", "serve", "--host", "0.0.0.0"]

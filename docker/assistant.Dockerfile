# The assistant runtime: Rasa 3.6 serving the dialogue model, with our own graph
# components (bot.nlu and the bot.core helpers they import) and nothing of the service.
# Build from the repository root (docker-compose.yml does):
#   docker build -f docker/assistant.Dockerfile -t wuye-assistant .
# The model: a pre-trained one if docker/model.tar.gz is in the build context, e.g.
#   make train && cp -L models/current.tar.gz docker/model.tar.gz
# otherwise it is trained here with `python -m rasa train` (same config and seeds).
FROM python:3.10-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY requirements/assistant.lock requirements/
RUN pip install --no-cache-dir "pip==24.3.1" \
 && pip install --no-cache-dir --no-deps -r requirements/assistant.lock \
 && pip check
COPY config.yml domain.yml credentials.yml ./
COPY data/ data/
COPY project/jieba/ project/jieba/
COPY bot/__init__.py bot/
COPY bot/core/ bot/core/
COPY bot/nlu/ bot/nlu/
# bot.rasa_run: `rasa run` with its action-response schema checked once (docs/profile.md).
COPY bot/rasa_run.py bot/
# docker/model.tar.g[z] matches nothing when no pre-trained model was put there; the
# endpoints file is always there, so the COPY never lacks a source.
COPY docker/endpoints.prod.yml docker/model.tar.g[z] docker/
RUN if [ -f docker/model.tar.gz ]; then \
      mv docker/model.tar.gz model.tar.gz; \
    else \
      python -m rasa train --config config.yml --domain domain.yml --data data \
        --out /tmp/models --fixed-model-name model \
      && mv /tmp/models/model.tar.gz model.tar.gz \
      && rm -rf /tmp/models .rasa; \
    fi
USER 1000
EXPOSE 5005
# The HTTP API reads and rewrites any resident's conversation and replaces the model: it is
# never served without a token (the shell refuses to start when RASA_AUTH_TOKEN is unset).
CMD ["sh", "-c", "exec python -m bot.rasa_run run --enable-api --auth-token \"${RASA_AUTH_TOKEN:?set RASA_AUTH_TOKEN}\" \
--model /app/model.tar.gz --endpoints docker/endpoints.prod.yml --credentials credentials.yml"]

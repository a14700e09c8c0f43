# The kflow image: the `kflow` command line on Python 3.11, used by docker-compose.yml for the
# processor and worker services (`docker compose run --rm processor runs list` works too).
#
#   docker build -t kflow:local .
#   docker run --rm kflow:local --help
#
# The repository is copied to /app and on PYTHONPATH, so `-A examples.basic` (or any module of
# yours mounted or copied under /app) imports without being part of the installed package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app
COPY . /app
# otel: KFLOW_TRACES=otlp works in the image; ui: the same image runs kflow ui
RUN pip install -c constraints.txt ".[otel,ui]" \
    && useradd --system --uid 10001 --home-dir /app kflow

USER kflow
ENTRYPOINT ["kflow"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# One image for `tourline serve` and `tourline worker`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md babel.cfg ./
COPY app ./app
COPY migrations ./migrations
COPY workers ./workers
COPY locales ./locales
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pybabel compile -D messages -d locales

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 TOURLINE_ENV=production \
    TOURLINE_LOCALES_DIR=/srv/tourline/locales
RUN useradd --create-home --uid 10001 tourline
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=10001:10001 /src /srv/tourline
WORKDIR /srv/tourline
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["tourline", "serve", "--host", "0.0.0.0", "--port", "8000"]

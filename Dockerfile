# The metastream image: the CLI, the consumer (`metastream consume`, the default
# command) and everything else in the package. compose.yaml builds it.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# .dockerignore lets in only what the package needs.
COPY . /tmp/metastream
RUN pip install /tmp/metastream && rm -rf /tmp/metastream

RUN useradd --create-home --uid 10001 metastream \
    && mkdir -p /data \
    && chown metastream /data
USER metastream
WORKDIR /data
ENV METASTREAM_HOME=/data
VOLUME ["/data"]

# SIGTERM: the consumer finishes and acks its batch, then closes the database.
STOPSIGNAL SIGTERM
CMD ["metastream", "consume"]

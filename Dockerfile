# The `asya` image: sidecar, gateway, operator and crew (one image, the command picks the role).
#   docker build -t asya:latest .
#   kind load docker-image asya:latest        # or push it to your registry
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[all]" && rm -rf /src

RUN groupadd --system --gid 10001 asya \
    && useradd --system --uid 10001 --gid asya --home-dir /home/asya --create-home asya
USER 10001:10001
WORKDIR /home/asya

EXPOSE 8080 9091
ENTRYPOINT []
CMD ["asya", "--help"]

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY adapters ./adapters
COPY replay ./replay
RUN pip install --no-cache-dir .
ENV GRIDCASE_LOG_FORMAT=json
ENTRYPOINT []

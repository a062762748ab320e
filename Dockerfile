FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# Every package of pyproject.toml's [tool.setuptools.packages.find], and the data the engine reads beside its
# source at run time: schemas/ (the Kafka contract the relay names and the sink reads), rules/ (review rules).
# tests/unit/test_compose.py checks this list against pyproject.toml.
COPY domain ./domain
COPY service ./service
COPY projections ./projections
COPY replay ./replay
COPY adapters ./adapters
COPY district ./district
COPY importing ./importing
COPY sink ./sink
COPY schemas ./schemas
COPY rules ./rules
# Editable, so the files read relative to the source (schemas/, rules/) are where the code looks for them.
RUN pip install --no-cache-dir -e .
ENV GRIDCASE_LOG_FORMAT=json
ENTRYPOINT []

"""A reference downstream consumer: the Kafka topics and the committed JSON Schemas in, analytics tables out.

It imports nothing of the engine (a test walks its imports): what a reporting team copies is this folder, the
``schemas/`` folder and the broker's address. docs/sink.md describes the tables and how to run it.
"""

from __future__ import annotations

from sink.consume import Sink, SinkStats
from sink.schema import Catalogue, SchemaError, load

__all__ = ["Catalogue", "SchemaError", "Sink", "SinkStats", "load"]

"""Kafka: the relay that publishes the store, the published form, and Kafka-fed projections."""

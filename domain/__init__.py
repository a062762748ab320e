"""The gridcase domain: aggregates decide, events record. No I/O lives here."""

"""Everything that touches the outside: the event store, settings, logging, the CLI."""

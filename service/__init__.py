"""The application layer: command handlers per aggregate, a unit of work, number issuing."""

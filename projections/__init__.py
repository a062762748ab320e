"""Read models (case status, worker performance, intake) and the code that builds them."""

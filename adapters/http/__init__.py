"""The HTTP API: Open311 GeoReport v2 intake, the native JSON API of every command and query, bearer tokens.

``create_app(settings)`` builds the FastAPI application; ``gridcase serve`` runs it
under uvicorn with the projections following the store in the same process.
"""

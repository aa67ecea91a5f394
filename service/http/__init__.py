"""The HTTP faces of the core: the FastAPI app, its routes, middleware and error mapping."""

"""API routers, one module per resource; :func:`nhs_lookup.service.api.create_app` includes them all."""

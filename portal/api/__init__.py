"""JSON API under /api/v1: personal access tokens, one error shape, OpenAPI from schemas."""

"""Full-text search in English and Chinese on one Whoosh index."""

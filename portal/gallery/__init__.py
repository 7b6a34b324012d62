"""Report template gallery: templates, versions, safe uploads, ratings, downloads."""

"""HTML pages (/ and /view/{id}): another issue fills this list."""
routes = []

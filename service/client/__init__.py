"""`service submit | jobs | show | metrics | predict | cancel`: a client of the HTTP API."""

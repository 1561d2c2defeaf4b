"""Moving bytes: tar streams, compression, chunked readers."""

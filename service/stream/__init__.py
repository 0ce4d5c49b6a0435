"""The hot path of one table stream: rows → markup → byte chunks → (gzip) → the response body.

``markup`` escapes a batch of rows at once, ``formats`` makes CSV and NDJSON and the error
markers, ``chunker`` coalesces template pieces into chunks of ``TABLESTREAM_CHUNK_BYTES``,
``compression`` gzips chunk by chunk, and ``body`` is the WSGI iterable that owns the stream's
lifecycle: outcome, error marker, source closed. Nothing here does I/O or touches Flask
globals except ``body``, which is handed its collaborators.
"""

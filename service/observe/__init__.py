"""What watches the stream without driving it: metrics, the request log, stream status.

Observers are told once per chunk and once at the end (``stream.body.StreamObserver``), never
per row; the HTTP middleware here stops its clock when the server closes the body, so a
streamed page is measured to its last byte.
"""

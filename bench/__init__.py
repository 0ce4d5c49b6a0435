"""The side-by-side benchmark: this service's stream against the usual ways to serve a table.

Nothing here is imported by the service; the comparison routes exist only in the bench server.
"""

"""What runs the app: the CLI, waitress with its deadlines, admission, the watchdog, processes.

``cli`` parses the command line; ``serve`` puts the server together and runs it; ``admin`` is
the offline ``token`` and ``demo-db``; ``connections`` builds waitress plus request deadlines, a
real drain and the Expect fix, from ``tcpserver`` (the loop thread: accept, probes, drain, tick)
and ``channel`` (one connection's clocks); ``admission`` hands out stream slots; ``watchdog``
ends streams that stall, crawl or outlive a shutdown; ``processes`` drives the pure
``supervisor`` for ``--processes``; ``listening`` makes sockets; ``allocator`` tames glibc's
arenas.
"""

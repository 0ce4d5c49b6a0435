"""What runs the app: the CLI, waitress with its deadlines, admission, the watchdog, processes.

``cli`` parses flags and serves; ``connections`` is waitress plus request deadlines, a real
drain and the Expect fix; ``admission`` hands out stream slots; ``watchdog`` ends streams that
stall, crawl or outlive a shutdown; ``processes`` drives the pure ``supervisor`` for
``--processes``; ``listening`` makes sockets; ``allocator`` tames glibc's arenas.
"""

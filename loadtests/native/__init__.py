"""Running brink without Docker: a private Postgres and the demo processes on this machine."""

"""Tools for users of this project (run as `python -m tools.<name>`)."""

"""Local stand-ins for outside services the tests must not reach."""

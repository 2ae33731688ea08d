"""A self-contained demo and test bed: a generated Debian-like tree served by a real rsync
daemon on 127.0.0.1. Used by ``mirrorkeeper demo`` and by the test suite."""

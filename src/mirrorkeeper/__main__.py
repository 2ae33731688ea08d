from mirrorkeeper.cli import entry

entry()

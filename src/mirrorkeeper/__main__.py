from mirrorkeeper.cli import main

main()

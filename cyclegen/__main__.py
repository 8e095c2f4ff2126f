from cyclegen.cli import main

main()

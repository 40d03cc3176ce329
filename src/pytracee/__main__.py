from pytracee.cli import main

main()

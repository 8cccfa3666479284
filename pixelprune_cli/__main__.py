from pixelprune_cli.cli.cli import main

main()

from retailpulse_cli.cli.app import main

main()

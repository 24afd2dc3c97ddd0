from kakuritsu.cli import main

main()

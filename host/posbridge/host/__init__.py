"""The checkout side: drivers, check-in, the transaction queue, the forwarder, the console and the CLI."""

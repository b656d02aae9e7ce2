"""One module per `gen` subcommand. Each is a thin click wrapper: flags -> config -> library call."""

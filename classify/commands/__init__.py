"""One module per `classify` subcommand. Each is a thin click wrapper: flags -> config -> library call."""

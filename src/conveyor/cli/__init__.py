"""The command line: thin commands over the library; owns all printing and exit codes."""

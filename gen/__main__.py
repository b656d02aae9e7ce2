"""`python -m gen ...`: the same CLI as the `gen` command."""

from gen.cli import main

if __name__ == "__main__":
    main(prog_name="gen")

"""`python -m classify ...`: the same CLI as the `classify` command."""

from classify.cli import main

if __name__ == "__main__":
    main(prog_name="classify")

"""`python -m gen.pipeline --config F --out DIR`: the same as `gen pipeline`."""

from gen.commands.pipeline import pipeline

if __name__ == "__main__":
    pipeline(prog_name="python -m gen.pipeline")

"""`python -m forgeml ...` is the same as the `forgeml` command (torchrun uses this form)."""

from forgeml.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m router` is the `referral-router` command."""

from router.cli import main

# Guarded: worker processes (forkserver) import the main module under another name.
if __name__ == "__main__":
    raise SystemExit(main())

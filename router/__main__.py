"""`python -m router` is the `referral-router` command."""

from router.cli import main

raise SystemExit(main())

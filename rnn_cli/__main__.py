"""`python -m rnn_cli` is the same as the `rnn-cli` console script."""

from rnn_cli.cli import main

raise SystemExit(main())

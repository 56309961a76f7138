"""`python -m bot …`: the command line lives in bot.app.cli."""
import sys

from bot.app.cli import main

sys.exit(main())

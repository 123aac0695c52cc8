import sys

from adacal.cli import main

sys.exit(main())

import sys

from kairoi.cli import main

sys.exit(main())

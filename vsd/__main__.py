import sys

from vsd.cli import main

sys.exit(main())

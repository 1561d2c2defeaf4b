"""``python -m kubecost_etl check-config FILE``: see ``kubecost_etl.cli``."""

import sys

from kubecost_etl.cli import main

sys.exit(main())

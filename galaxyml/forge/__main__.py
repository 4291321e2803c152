import sys

from galaxyml.forge.cli import main

sys.exit(main())

import sys

from outrider.envs.examples.remote_counter.server import main

sys.exit(main())

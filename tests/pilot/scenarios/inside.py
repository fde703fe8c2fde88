"""Entry point inside the namespace: checks it is loopback-only, sets lo up, runs a scenario."""

import runpy
import sys

from dfl.pilot.netns import bring_up_loopback, exit_on_termination, require_loopback_only

exit_on_termination()
require_loopback_only()
bring_up_loopback()
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")

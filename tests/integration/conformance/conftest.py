# The e2e harness (wsgate_harness.py: wsgate on free ports, a real Redis, ...) is shared.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

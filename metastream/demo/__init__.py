"""``metastream demo``: an example pipeline, run twice against the local stack, then shown.

``metastream.demo.pipeline`` is the example (read it as one);
``metastream.demo.run`` starts the stack, runs it and prints what was recorded.
"""

from metastream.demo.run import DemoError, DemoRun, run_demo

__all__ = ["DemoError", "DemoRun", "run_demo"]

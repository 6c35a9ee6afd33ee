"""Another process training: a run that logs a point every 0.1 s until killed.

    python slow_writer.py STORE NAME
"""

import sys
import time

import epochal

store, name = sys.argv[1], sys.argv[2]
with epochal.start("live", name, store=store, flush_interval=0.2) as run:
    print(run.id, flush=True)
    step = 0
    while True:
        run.log({"train/loss": 1.0 / (step + 1)})
        run.step()
        step += 1
        time.sleep(0.1)

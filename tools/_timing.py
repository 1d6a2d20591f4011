"""What the benchmark scripts share: the time a call takes (wall clock and this process's CPU), and the report."""
from __future__ import annotations
import json, time

def timed(fn, *args, **kwargs):
    "Call fn(*args, **kwargs): (its result, wall-clock seconds, CPU seconds of this process)."
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - w0, time.process_time() - c0

def report(out: dict, as_json: bool = False, digits: int = 2):
    "Print the measurements: one JSON object, or one aligned `name value` line each."
    if as_json: print(json.dumps(out)); return
    width = max(len(k) for k in out) + 2
    for k, v in out.items(): print(f"{k:{width}s}{v:.{digits}f}" if isinstance(v, float) else f"{k:{width}s}{v}")

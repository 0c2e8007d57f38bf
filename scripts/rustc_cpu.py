#!/usr/bin/env python3
"""A RUSTC_WRAPPER that records what each rustc job costs: appends "crate CPU-seconds
wall-seconds" to the file $RUSTC_CPU_LOG (CPU is user + system of the job, so another load on
the machine changes it little). For the build figures in docs/PERFORMANCE.md#first-run:

    RUSTC_WRAPPER=scripts/rustc_cpu.py RUSTC_CPU_LOG=/tmp/cpu.log cargo build --release
    sort -k2 -n -r /tmp/cpu.log | head    # the costliest jobs
"""
import os
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
name = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--crate-name"), None)
start = time.time()
# The jobserver's descriptors stay open, so that rustc shares cargo's job slots.
code = subprocess.call(args, close_fds=False)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
if name and os.environ.get("RUSTC_CPU_LOG"):
    with open(os.environ["RUSTC_CPU_LOG"], "a") as log:
        log.write(f"{name} {used.ru_utime + used.ru_stime:.2f} {time.time() - start:.2f}\n")
sys.exit(code)

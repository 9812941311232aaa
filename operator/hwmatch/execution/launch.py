"""Trial launcher: pin the CPUs, tie the trial's life to its parent, then become the asset's command.

Run as a script (``python -I -S launch.py CONFIG -- COMMAND...``), standard
library only, so it starts in milliseconds. Doing this in a process of its own
rather than in ``preexec_fn`` keeps the forking executor thread-safe, and the
command inherits the CPU affinity across ``exec``, so every thread the asset
starts stays on the platform's CPUs. ``PR_SET_PDEATHSIG`` kills the trial when
the thread that started it dies — also when ``hwmatch run`` is SIGKILLed — so
a rerun never races an orphan of the killed run.
"""

import ctypes
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
#: Exit status when the command cannot be started, as a shell uses.
CANNOT_RUN = 127


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    command = argv[3:] if argv[2:3] == ["--"] else argv[2:]
    if config.get("cpus"):
        os.sched_setaffinity(0, config["cpus"])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(f"hwmatch launcher: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    if os.getppid() != config["parent"]:  # the parent died before prctl took effect
        sys.exit(CANNOT_RUN)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"hwmatch: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        sys.exit(CANNOT_RUN)


if __name__ == "__main__":
    main(sys.argv)

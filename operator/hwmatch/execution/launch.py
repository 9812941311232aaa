"""Trial launcher: pin the CPUs, tie the trial's life to its parent, then become the asset's command.

Run as a script (``python -I -S launch.py PARENT_PID CPUS -- COMMAND...``,
CPUS like ``0,1`` or ``-`` for no pinning), importing only ``os``, ``sys``
and ``ctypes`` so that it adds little to a trial's start. Doing this in a process of its own
rather than in ``preexec_fn`` keeps the forking executor thread-safe, and the
command inherits the CPU affinity across ``exec``, so every thread the asset
starts stays on the platform's CPUs. ``PR_SET_PDEATHSIG`` kills the trial when
the thread that started it dies — also when ``hwmatch run`` is SIGKILLed — so
a rerun never races an orphan of the killed run.
"""

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1
SIGKILL = 9  # the signal module imports enum: slower to start
#: Exit status when the command cannot be started, as a shell uses.
CANNOT_RUN = 127


def main(argv: list[str]) -> None:
    parent, cpus, separator, *command = argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: launch.py PARENT_PID CPUS -- COMMAND...")
    if cpus != "-":
        os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0:
        print(f"hwmatch launcher: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        sys.exit(CANNOT_RUN)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"hwmatch: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        sys.exit(CANNOT_RUN)


if __name__ == "__main__":
    main(sys.argv)

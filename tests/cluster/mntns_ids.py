#!/usr/bin/env python3
"""Make every mount namespace made from now on newer, by its id, than the given processes'.

    mntns_ids.py PID...

Why: Linux 6.18 refuses to bind-mount a mount namespace's file (/proc/P/ns/mnt) whose id is not
above the caller's own namespace's (mnt_ns_loop, EINVAL), and from 6.18 ids come from per-CPU
batches of a global counter, so a namespace made on one CPU can get a lower id than an older one
made on another. job_container/tmpfs binds each job's namespace that way from slurmstepd, which
in the test cluster lives in its node holder's namespace (made at boot): on the CPU whose batch
lies below the holder's, every job's namespace fails ("_create_ns: ns base mount failed: Invalid
argument"). Reproduced outside Slurm with a holder on CPU 1 and the job's unshare on CPU 0.

On each CPU we may run on, this unshares mount namespaces in one process until the new id is
above the holders' highest: that CPU's batch is then used up and its next one, taken from the
global counter, lies above. Kernels without the id ioctl (before 6.9) number namespaces in one
sequence, and need nothing. Prints what it did on one line.
"""
import ctypes
import fcntl
import os
import struct
import sys

CLONE_NEWNS = 0x00020000
NS_GET_MNTNS_ID = 0x8008B705  # _IOR(0xb7, 0x5, __u64)
LIMIT = 1 << 20  # per CPU; a batch is a few thousand ids


def mntns_id(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack("Q", fcntl.ioctl(fd, NS_GET_MNTNS_ID, b"\0" * 8))[0]
    finally:
        os.close(fd)


def lift_cpu(libc, cpu, floor):
    """In a child pinned to cpu: unshare until the new namespace's id is above floor."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.sched_setaffinity(0, {cpu})
            for _ in range(LIMIT):
                if libc.unshare(CLONE_NEWNS) != 0:
                    break
                if mntns_id("/proc/self/ns/mnt") > floor:
                    code = 0
                    break
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def main(pids):
    try:
        floor = max(mntns_id(f"/proc/{pid}/ns/mnt") for pid in pids)
    except OSError as e:
        print(f"mntns_ids: no namespace ids here ({e.strerror}): nothing to do")
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    cpus = sorted(os.sched_getaffinity(0))
    failed = [cpu for cpu in cpus if not lift_cpu(libc, cpu, floor)]
    if failed:
        print(f"mntns_ids: could not lift CPUs {failed} above id {floor}", file=sys.stderr)
        return 1
    print(f"mntns_ids: new mount namespaces on CPUs {cpus} are above id {floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

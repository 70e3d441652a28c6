#!/usr/bin/python3
"""Start-up cost of the --pymonitor hook (share/sitecustomize.py), side by side.

    bench/monitor_overhead.py [--runs N] [--python PATH] [--out FILE]

Runs `PYTHON -c pass` and `PYTHON -c 'import numpy, scipy'` without the hook and
with it, interleaved (every round runs each variant once, in a shuffled order, so
a load change on the machine hits all of them alike), and reports medians of the
wall-clock time and of the CPU time (user + system, from wait4) of the child.
The overhead is the median of the per-round differences to the run without the
hook. The hook is set up as the prolog does it: copied into the job's spool (a
fresh directory in /dev/shm) as <spool>/.hook/sitecustomize.py. Variants:

  warm   every process but the first of a job on a node and Python version: the
         hook's byte code is cached next to the copy (written by Python, or by
         the hook itself under PYTHONDONTWRITEBYTECODE)
  cold   the first one: compiles the hook and writes the cache Writes
bench/results/monitor_overhead.json and prints one Markdown table row per case.
Target (issue 4): under 3 ms and under 5 % of `python3 -c pass`.
"""
import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 3.0
TARGET_RATIO = 0.05


def run_once(python, code, env):
    """(wall seconds, CPU seconds) of one child run."""
    start = time.perf_counter()
    child = subprocess.Popen([python, '-c', code], env=env, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit('monitor_overhead: %s -c %r failed with %d' % (python, code, child.returncode))
    return wall, usage.ru_utime + usage.ru_stime


def install_hook(spool):
    os.makedirs(os.path.join(spool, '.hook'))
    shutil.copy(os.path.join(TOP, 'share', 'sitecustomize.py'), os.path.join(spool, '.hook'))


def clean_spool(spool, keep_cache):
    for name in os.listdir(spool):
        if name.endswith('.log'):
            os.unlink(os.path.join(spool, name))
    if not keep_cache:
        shutil.rmtree(os.path.join(spool, '.hook', '__pycache__'), ignore_errors=True)


def median_ms(values):
    return round(statistics.median(values) * 1000, 3)


def summarize(samples, base):
    out = {}
    for name, runs in samples.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        out[name] = {'wall_ms': median_ms(wall), 'cpu_ms': median_ms(cpu)}
        if name != base:
            diff_wall = [w - b[0] for (w, _), b in zip(runs, samples[base])]
            diff_cpu = [c - b[1] for (_, c), b in zip(runs, samples[base])]
            out[name]['overhead_wall_ms'] = median_ms(diff_wall)
            out[name]['overhead_cpu_ms'] = median_ms(diff_cpu)
            out[name]['overhead_wall_ratio'] = round(
                statistics.median(diff_wall) / statistics.median([w for w, _ in samples[base]]), 4)
    return out


def measure(python, code, variants, runs):
    samples = {name: [] for name in variants}
    order = list(variants)
    for i in range(runs + 5):
        random.shuffle(order)
        for name in order:
            env, before = variants[name]
            if before:
                before()
            result = run_once(python, code, env)
            if i >= 5:  # the first rounds warm the page cache
                samples[name].append(result)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=300)
    parser.add_argument('--python', default='/usr/bin/python3')
    parser.add_argument('--out', default=os.path.join(TOP, 'bench', 'results', 'monitor_overhead.json'))
    args = parser.parse_args()

    spools = {name: tempfile.mkdtemp(prefix='pylaunch-bench-', dir='/dev/shm')
              for name in ('warm', 'cold')}
    try:
        for spool in spools.values():
            install_hook(spool)
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith('PYLAUNCH_') and k != 'PYTHONPATH'}

        def hook_env(name):
            return dict(base_env, PYTHONPATH=os.path.join(spools[name], '.hook'),
                        PYLAUNCH_MONITOR_SPOOL=spools[name], PYLAUNCH_MONITOR_JOB='1')

        counter = {'n': 0}

        def tidy(name, keep_cache):
            def before():
                counter['n'] += 1
                if not keep_cache or counter['n'] % 50 == 0:
                    clean_spool(spools[name], keep_cache)
            return before

        variants = {
            'without': (base_env, None),
            'warm': (hook_env('warm'), tidy('warm', True)),
            'cold': (hook_env('cold'), tidy('cold', False)),
        }
        cases = {}
        cases['python3 -c pass'] = summarize(
            measure(args.python, 'pass', variants, args.runs), 'without')
        heavy = 'import numpy, scipy'
        if subprocess.run([args.python, '-c', heavy], env=base_env,
                          stderr=subprocess.DEVNULL).returncode == 0:
            cases["python3 -c 'import numpy, scipy'"] = summarize(
                measure(args.python, heavy,
                        {k: variants[k] for k in ('without', 'warm')}, max(args.runs // 3, 20)),
                'without')
    finally:
        for spool in spools.values():
            shutil.rmtree(spool, ignore_errors=True)

    warm = cases['python3 -c pass']['warm']
    result = {
        'benchmark': 'monitor_overhead',
        'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'machine': {'cpus': os.cpu_count(), 'kernel': platform.release(),
                    'python': subprocess.run([args.python, '-c', 'import sys; print(sys.version)'],
                                             capture_output=True, text=True).stdout.strip(),
                    'loadavg_start': os.getloadavg()[0]},
        'runs': args.runs,
        'target': {'max_ms': TARGET_MS, 'max_ratio': TARGET_RATIO},
        'meets_target': (warm['overhead_wall_ms'] < TARGET_MS and
                         warm['overhead_wall_ratio'] < TARGET_RATIO),
        'cases': cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
        f.write('\n')

    print('| command | hook | without (ms) | with (ms) | overhead wall (ms) | overhead | overhead CPU (ms) |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for case, stats in cases.items():
        for name, s in stats.items():
            if name == 'without':
                continue
            print('| `%s` | %s | %.2f | %.2f | %+.2f | %+.1f %% | %+.2f |' % (
                case, name, stats['without']['wall_ms'], s['wall_ms'], s['overhead_wall_ms'],
                100 * s['overhead_wall_ratio'], s['overhead_cpu_ms']))
    print('meets target (warm, -c pass: < %.0f ms and < %.0f %%): %s' % (
        TARGET_MS, 100 * TARGET_RATIO, result['meets_target']))


if __name__ == '__main__':
    main()

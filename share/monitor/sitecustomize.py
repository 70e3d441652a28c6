# pylaunch --pymonitor: the shim Python imports as sitecustomize from the job's
# <spool>/.hook directory, which task_init put first on PYTHONPATH. It takes that
# directory off sys.path again, starts the hook (pylaunch_monitor.py next to it, on
# Python 3.6 and later) and then runs the sitecustomize Python would have imported
# without this one, so a site's, Debian's, conda's or the user's keeps working (on
# Python 2.7 too). The prolog also copies this file into the spool as usercustomize.py,
# the slot Python imports after sitecustomize: there it starts the hook when a module
# system prepended a directory with a sitecustomize of its own (Lmod style), and chains
# to the usercustomize that comes next. The slot is the module's own name. Python 2
# syntax on purpose: every interpreter of a job reads this file.
import sys


def _pylaunch_monitor_boot(slot):
    import os
    here = os.path.dirname(__file__)
    first = None
    for i in range(len(sys.path) - 1, -1, -1):
        if sys.path[i] == here:
            del sys.path[i]
            first = i
    if sys.version_info >= (3, 6):
        try:
            core = sys.modules.get('pylaunch_monitor')
            if core is None:
                import _frozen_importlib as bootstrap
                import _frozen_importlib_external as external
                spec = external.spec_from_file_location(
                    'pylaunch_monitor', os.path.join(here, 'pylaunch_monitor.py'))
                core = bootstrap.module_from_spec(spec)
                sys.modules['pylaunch_monitor'] = core
                try:
                    spec.loader.exec_module(core)
                except BaseException:
                    del sys.modules['pylaunch_monitor']
                    raise
            core.start(slot)
        except Exception:
            pass
    return sys.path[first:] if first is not None else []


# Runs the module slot (sitecustomize, usercustomize) found first in path, as Python
# would have without this shim; its errors reach site as they would anyway.
def _pylaunch_monitor_chain(slot, path):
    if sys.version_info >= (3, 4):
        from _frozen_importlib_external import PathFinder
        from _frozen_importlib import module_from_spec
        spec = PathFinder.find_spec(slot, path)
        if spec is None or spec.loader is None:
            return
        module = module_from_spec(spec)
        sys.modules[slot] = module
        spec.loader.exec_module(module)
    else:
        import imp
        try:
            found = imp.find_module(slot, path)
        except ImportError:
            return
        del sys.modules[slot]
        try:
            imp.load_module(slot, *found)
        finally:
            if found[0]:
                found[0].close()


_pylaunch_monitor_chain(__name__, _pylaunch_monitor_boot(__name__))

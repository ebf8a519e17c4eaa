"""Where the SDK gets the contract's types and the host's functions: the bindings componentize-py generates inside a
component, the stand-ins of `_native` everywhere else.

Inside a component `sys.platform` is `wasi` and the generated modules (`wit_world`, `componentize_py_types`) are
importable; they are imported here once, when the app module is imported, which componentize-py does at build time
(a component has no files at run time, so nothing can be imported later). On CPython the generated modules are
never imported, even if a copy is on the path: their host functions only raise `NotImplementedError`.
"""

import sys

IN_COMPONENT = False

if sys.platform == "wasi":
    try:
        from componentize_py_types import Err  # noqa: F401
        from wit_world import exports as _exports
        from wit_world.imports import host, types  # noqa: F401

        PolicyBase = _exports.Policy
        IN_COMPONENT = True
    except ImportError:
        pass

if not IN_COMPONENT:
    from ._native import Err, host, types  # noqa: F401,F811

    PolicyBase = object

#: `host.LogLevel` case for each `retention_sdk.LogLevel` code.
HOST_LEVELS = (host.LogLevel.DEBUG, host.LogLevel.INFO, host.LogLevel.WARN, host.LogLevel.ERROR)

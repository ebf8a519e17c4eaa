"""Log lines to the host (`host.log`): tagged by the host with the plugin and the pass, bounded per pass. Natively
they go to the testing module's capture, or to stderr outside a testing run."""

from . import _bindings
from .types import LogLevel


class Log:
    """`log.info("kept %d of %d", a, b)`: `%`-style arguments are formatted only when given. Levels `debug`, `info`,
    `warn`, `error`; `log(level, message)` takes a `LogLevel`. `print` works too (the host captures it into the same log, as `stdout`), without a level."""

    __slots__ = ()

    def __call__(self, level, message, *args):
        text = (str(message) % args) if args else str(message)
        _bindings.host.log(_bindings.HOST_LEVELS[LogLevel(level)], text)

    def debug(self, message, *args):
        self(LogLevel.DEBUG, message, *args)

    def info(self, message, *args):
        self(LogLevel.INFO, message, *args)

    def warn(self, message, *args):
        self(LogLevel.WARN, message, *args)

    warning = warn

    def error(self, message, *args):
        self(LogLevel.ERROR, message, *args)


log = Log()

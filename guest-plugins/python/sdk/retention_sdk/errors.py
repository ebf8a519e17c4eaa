"""The exception a plugin raises to fail the pass with exactly its message."""


class PluginError(Exception):
    """Fails the current call (`begin`, `observe` or `decide`), and with it the pass, with this message as the
    plugin's error text, without the exception's type or a traceback. The parameter helpers of `Context` raise it;
    raise it yourself for anything the pass's operator should read and fix. Any other exception fails the pass too,
    with its type, message and where it was raised."""

    @property
    def message(self):
        return str(self.args[0]) if self.args else ""

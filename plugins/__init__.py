"""Built-in plugins. Each module here is a plugin written against the public
hook API in :mod:`acdc_engine.hookspecs`, exactly as a third-party one."""

"""The face of the engine: the ``acdc-engine`` command line, the live view, progress bars, the HTML report and
``status``."""

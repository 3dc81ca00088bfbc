"""What decides a model's place in the archive: its measures (``skills``, ``capabilities``) and the
minimal criterion (``gibberish``)."""

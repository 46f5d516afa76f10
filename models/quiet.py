"""TensorFlow's C++ start-up lines held back from the terminal, shown only if what printed them failed."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def held_stderr():
    """File descriptor 2 sent to a temporary file for the block; replayed should the block raise.

    TensorFlow's start-up lines (cudart_stub, "failed call to cuInit" without a GPU driver, "oneDNN custom
    operations are on" on CPUs with AVX-512 VNNI/BF16) come out before absl's logging starts, so
    TF_CPP_MIN_LOG_LEVEL does not hide them; nor oneDNN's notices on the first run of a float16 kernel.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)

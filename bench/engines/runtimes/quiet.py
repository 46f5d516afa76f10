"""The converters' and runtimes' own chatter (tf2onnx's INFO lines and warnings, NNCF's progress bar, XNNPACK's
"Created delegate") held back, and shown only if what printed it failed."""
from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings

from models.quiet import held_stderr

CHATTY_LOGGERS = ("tf2onnx", "nncf", "onnxruntime", "absl")


@contextlib.contextmanager
def quiet():
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with held_stderr(), contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's FutureWarning on np.object, which users cannot act on
            yield
    except BaseException:
        sys.stdout.write(printed.getvalue())
        raise
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

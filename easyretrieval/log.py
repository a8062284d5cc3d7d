"""Messages go through `logging`, under the "easyretrieval" logger, rank-aware.

`setup_logging(rank)` (called by the CLI) sends rank 0's INFO messages to stdout as "[easyretrieval] ...",
and WARNING and above of every rank to stderr ("[easyretrieval rank N] ..." on ranks other than 0); other
ranks' INFO messages are dropped, so N ranks print one copy of the run's story. A program that imports
easyretrieval without calling it gets Python's defaults (warnings on stderr, nothing else).
"""
import logging
import sys

LOGGER_NAME = "easyretrieval"


def get_logger(name=None):
    """The "easyretrieval" logger, or its child "easyretrieval.<name>"."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


class RankFilter(logging.Filter):
    """Keep INFO and below only on rank 0; name the rank in messages of the others."""

    def __init__(self, rank: int, max_level: int = None, min_level: int = logging.NOTSET):
        super().__init__()
        self.rank = rank
        self.max_level = max_level
        self.min_level = min_level

    def filter(self, record):
        if record.levelno < self.min_level or (self.max_level is not None and record.levelno > self.max_level):
            return False
        if self.rank != 0 and record.levelno < logging.WARNING:
            return False
        record.where = LOGGER_NAME if self.rank == 0 else f"{LOGGER_NAME} rank {self.rank}"
        return True


def setup_logging(rank: int = 0, level: int = logging.INFO):
    """Install the rank-aware stdout/stderr handlers on the "easyretrieval" logger (idempotent)."""
    logger = get_logger()
    for handler in list(logger.handlers):
        if getattr(handler, "_easyretrieval", False):
            logger.removeHandler(handler)
    formatter = logging.Formatter("[%(where)s] %(message)s")
    # The streams are looked up at each message, so a redirected sys.stdout (pytest's capsys) is honoured.
    for stream_name, low, high in (("stdout", logging.NOTSET, logging.INFO), ("stderr", logging.WARNING, None)):
        handler = _StreamHandler(stream_name)
        handler.addFilter(RankFilter(rank, max_level=high, min_level=low))
        handler.setFormatter(formatter)
        handler._easyretrieval = True
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class _StreamHandler(logging.StreamHandler):
    def __init__(self, stream_name):
        super().__init__(getattr(sys, stream_name))
        self.stream_name = stream_name

    def emit(self, record):
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)
        self.flush()

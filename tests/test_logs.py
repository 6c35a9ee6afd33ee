"""The epochal logger: warnings to stderr and information to stdout as 'epochal: ...', or into the
application's own logging when it asks."""

import logging

from epochal.logs import logger


def test_a_warning_reaches_stderr_with_the_prefix_and_information_reaches_stdout(capsys):
    logger.warning("the store refused a write")
    logger.info("wrote 3 runs")
    out, err = capsys.readouterr()
    assert err == "epochal: the store refused a write\n"
    assert out == "epochal: wrote 3 runs\n"


def test_with_the_handler_removed_and_propagation_on_the_application_sees_the_messages(caplog, capsys):
    handlers, propagate = list(logger.handlers), logger.propagate
    logger.handlers.clear()
    logger.propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="epochal"):
            logger.warning("the store refused a write")
    finally:
        logger.handlers[:] = handlers
        logger.propagate = propagate
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("epochal", "WARNING", "the store refused a write")
    ]
    assert capsys.readouterr() == ("", "")  # nothing printed by epochal's own handler

"""`python -m tlhelpers` and the `tlhelpers` command: the command line."""

import sys


def run():
    """Import TensorFlow without its start-up log lines, then run the command line (`cli.main`).

    TensorFlow's C++ log lines would bury the command's own messages (set `TF_CPP_MIN_LOG_LEVEL=0` to see
    them); `cli`'s imports load TensorFlow, so this comes before them.
    """
    from tlhelpers.quiet import import_tensorflow

    import_tensorflow(log_level="3", list_devices=False)
    from tlhelpers.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())

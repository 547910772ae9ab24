"""``python -m commet_webhooks``: the ``commet-webhooks`` command line."""

from commet_webhooks.cli import main

if __name__ == "__main__":
    main()

"""``python -m ncat_trio``."""

from ncat_trio.cli import main

if __name__ == "__main__":
    main()
